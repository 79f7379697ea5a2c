//! The Skywire trunk's stream carrier against the real stand-in of
//! docs/skywire.md §5: Debian's microsocks plays skysocks-client (CONNECT only,
//! RFC 1929 passcode). Two relay ends on loopback open the carrier through it,
//! run the trunk handshake over it and carry a SIP frame; a wrong passcode and
//! a stopped proxy fail with a reason, within the deadline.

use std::time::{Duration, Instant};

use ness_core::trunk::session::{FrameReader, accept, dial, write_frame};
use ness_core::trunk::{Frame, FrameKind, StreamCarrier, TrunkIdentity, TrunkSecret, VisorKey};
use ness_tests::{Proc, require_tool};

const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
const LIMIT: Duration = Duration::from_secs(3);

fn id(me: &str, peer: &str) -> TrunkIdentity {
    TrunkIdentity { me: VisorKey::parse(me).unwrap(), peer: VisorKey::parse(peer).unwrap(), secret: TrunkSecret::new(&b"a-trunk-secret-of-32-bytes-or-so"[..]).unwrap() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// microsocks on 127.0.0.1:`port`, with a passcode, once it accepts connections.
fn microsocks(port: u16) -> Proc {
    let p = Proc::start(require_tool("microsocks", "microsocks"), &["-i", "127.0.0.1", "-p", &port.to_string(), "-u", "trunk", "-P", "passcode"], &[]);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(5), "microsocks did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_handshake_and_carry_sip_through_a_socks5_proxy() {
    let proxy_port = free_port();
    let mut socks = microsocks(proxy_port);

    // The peer relay, on "its" loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = FrameReader::new(r);
        accept(&mut r, &mut w, id(B, A), LIMIT).await.unwrap();
        let f = r.next().await.unwrap().expect("a frame after the handshake");
        write_frame(&mut w, Frame::new(f.kind, f.dst_port, f.src_port, f.payload.clone())).await.unwrap();
        f
    });

    let carrier = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: format!("127.0.0.1:{peer_port}"),
        auth: Some(("trunk".into(), "passcode".into())),
    };
    let (r, mut w) = carrier.connect(LIMIT).await.unwrap().into_split();
    let mut r = FrameReader::new(r);
    dial(&mut r, &mut w, id(A, B), LIMIT).await.unwrap();
    let invite = Frame::new(FrameKind::Sip, 5060, 5062, &b"INVITE sip:+4930123456@127.77.0.2 SIP/2.0\r\n\r\n"[..]);
    write_frame(&mut w, invite.clone()).await.unwrap();
    let echo = r.next().await.unwrap().unwrap();
    assert_eq!((echo.src_port, echo.dst_port, &echo.payload), (5062, 5060, &invite.payload));
    assert_eq!(peer.await.unwrap(), invite);
    socks.wait_for(&format!("connected to 127.0.0.1:{peer_port}"), Duration::from_secs(5));

    // A wrong passcode is refused by the proxy, with a reason.
    let wrong = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: format!("127.0.0.1:{peer_port}"),
        auth: Some(("trunk".into(), "guess".into())),
    };
    let e = wrong.connect(LIMIT).await.unwrap_err().to_string();
    assert!(e.contains("socks5 via 127.0.0.1"), "{e}");

    // The proxy stops: the carrier fails at once rather than at the deadline.
    socks.kill();
    let t0 = Instant::now();
    let e = carrier.connect(LIMIT).await.unwrap_err().to_string();
    assert!(t0.elapsed() < LIMIT, "{e}");
    assert!(!e.contains("passcode\""), "the passcode must not appear in errors: {e}");
}
