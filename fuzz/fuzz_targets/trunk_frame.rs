//! Bytes from a trunk carrier: the stream decoder, the datagram form and the
//! handshake must never panic; every frame decoded re-encodes to the bytes it
//! came from; a handshake message from the fuzzer never authenticates.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ness_core::trunk::{Dialler, FrameCodec, Frame, Listener, TrunkIdentity, TrunkSecret, VisorKey};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut src = BytesMut::from(data);
    let mut consumed = 0;
    while let Ok(Some(f)) = FrameCodec.decode(&mut src) {
        let mut again = BytesMut::new();
        FrameCodec.encode(f.clone(), &mut again).expect("a decoded frame re-encodes");
        assert_eq!(&again[..], &data[consumed..consumed + again.len()]);
        consumed += again.len();
    }
    if let Ok(f) = Frame::from_datagram(data) {
        assert_eq!(f.to_datagram().unwrap(), data);
        let a = VisorKey::parse("02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706").unwrap();
        let b = VisorKey::parse("0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff").unwrap();
        let secret = TrunkSecret::new(&b"fuzzing-trunk-secret"[..]).unwrap();
        let listener_id = TrunkIdentity { me: b, peer: a, secret: secret.clone() };
        assert!(Listener::on_hello(listener_id, &f).is_err(), "a forged hello was accepted");
        let (dialler, _) = Dialler::start(TrunkIdentity { me: a, peer: b, secret });
        assert!(dialler.on_hello(&f).is_err(), "a forged answer was accepted");
    }
});
