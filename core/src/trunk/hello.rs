//! The trunk handshake: before any datagram is relayed, both relays prove they
//! hold the trunk's shared secret and say which Skywire visor (public key) they
//! are. A skysocks server CONNECTs anyone's stream to its host's loopback, so
//! the relay must not trust a stream just because it arrived.
//!
//! Three messages, carried in `Hello` frames; each side's HMAC-SHA256 covers the
//! other's fresh nonce, so a recorded handshake cannot be replayed:
//!
//! ```text
//!   dialler  → listener   hello { version, from, to, nonce_d, mac(dial | from | to | nonce_d) }
//!   listener → dialler    hello { version, from, to, nonce_l, mac(listen | from | to | nonce_d | nonce_l) }
//!   dialler  → listener   proof { mac(proof | nonce_d | nonce_l) }
//! ```
//!
//! Only protocol types and checks live here; the relay drives them over a carrier.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::frame::{Frame, FrameKind};

/// The trunk protocol version this code speaks.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
const HELLO_LEN: usize = 1 + 1 + 33 + 33 + NONCE_LEN + MAC_LEN;
const PROOF_LEN: usize = 1 + MAC_LEN;

/// A Skywire visor's public key: 33 bytes, compressed secp256k1 (`02…`/`03…`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisorKey([u8; 33]);

impl VisorKey {
    /// From the 66 hex characters Skywire prints.
    pub fn parse(hex_text: &str) -> Result<VisorKey, HandshakeError> {
        let t = hex_text.trim();
        let bytes = hex::decode(t).map_err(|_| HandshakeError::BadKey(t.to_owned()))?;
        VisorKey::from_bytes(&bytes).ok_or_else(|| HandshakeError::BadKey(t.to_owned()))
    }

    fn from_bytes(b: &[u8]) -> Option<VisorKey> {
        let k: [u8; 33] = b.try_into().ok()?;
        matches!(k[0], 2 | 3).then_some(VisorKey(k))
    }
}

impl std::fmt::Display for VisorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for VisorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VisorKey({self})")
    }
}

/// The trunk's pre-shared secret (never printed).
#[derive(Clone)]
pub struct TrunkSecret(Vec<u8>);

impl TrunkSecret {
    /// At least 16 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<TrunkSecret, HandshakeError> {
        let b = bytes.into();
        if b.len() < 16 { Err(HandshakeError::ShortSecret(b.len())) } else { Ok(TrunkSecret(b)) }
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"ness-trunk/1 ");
        m.update(label);
        for p in parts {
            m.update(p);
        }
        m
    }
}

impl std::fmt::Debug for TrunkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrunkSecret(<hidden>)")
    }
}

/// Why a handshake failed. Each ends the carrier session; the relay logs it
/// and re-dials with backoff.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0:?} is not a Skywire public key (66 hex characters starting 02 or 03)")]
    BadKey(String),
    #[error("the trunk secret is {0} bytes; use at least 16 (e.g. 32 random bytes, hex)")]
    ShortSecret(usize),
    #[error("the peer sent a malformed handshake ({0})")]
    Malformed(&'static str),
    #[error("the peer speaks trunk protocol version {0}, this relay {VERSION}")]
    Version(u8),
    #[error("the peer says it is visor {got}, but this trunk's peer is {want}")]
    WrongPeer { want: VisorKey, got: VisorKey },
    #[error("the peer's hello is meant for visor {0}, not this one")]
    NotForMe(VisorKey),
    #[error("the peer does not know this trunk's secret (the handshake's HMAC does not match)")]
    BadSecret,
    #[error("a {0:?} frame arrived before the handshake finished")]
    Unexpected(FrameKind),
}

/// A hello as it crosses the wire.
struct Hello {
    version: u8,
    from: VisorKey,
    to: VisorKey,
    nonce: [u8; NONCE_LEN],
    mac: [u8; MAC_LEN],
}

impl Hello {
    fn frame(&self) -> Frame {
        let mut p = Vec::with_capacity(HELLO_LEN);
        p.push(b'H');
        p.push(self.version);
        p.extend_from_slice(&self.from.0);
        p.extend_from_slice(&self.to.0);
        p.extend_from_slice(&self.nonce);
        p.extend_from_slice(&self.mac);
        Frame::new(FrameKind::Hello, 0, 0, Bytes::from(p))
    }

    fn parse(f: &Frame) -> Result<Hello, HandshakeError> {
        if f.kind != FrameKind::Hello {
            return Err(HandshakeError::Unexpected(f.kind));
        }
        let p = &f.payload;
        if p.first() != Some(&b'H') {
            return Err(HandshakeError::Malformed("not a hello"));
        }
        if p.len() >= 2 && p[1] != VERSION {
            return Err(HandshakeError::Version(p[1]));
        }
        if p.len() != HELLO_LEN {
            return Err(HandshakeError::Malformed("wrong length"));
        }
        let key = |at: usize| VisorKey::from_bytes(&p[at..at + 33]).ok_or(HandshakeError::Malformed("not a public key"));
        Ok(Hello {
            version: p[1],
            from: key(2)?,
            to: key(35)?,
            nonce: p[68..68 + NONCE_LEN].try_into().expect("length checked"),
            mac: p[68 + NONCE_LEN..].try_into().expect("length checked"),
        })
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0; NONCE_LEN];
    rand::fill(&mut n);
    n
}

/// Who this relay is and whom it trunks to.
#[derive(Clone, Debug)]
pub struct TrunkIdentity {
    pub me: VisorKey,
    pub peer: VisorKey,
    pub secret: TrunkSecret,
}

impl TrunkIdentity {
    fn check_sender(&self, h: &Hello) -> Result<(), HandshakeError> {
        if h.from != self.peer {
            return Err(HandshakeError::WrongPeer { want: self.peer, got: h.from });
        }
        if h.to != self.me {
            return Err(HandshakeError::NotForMe(h.to));
        }
        Ok(())
    }
}

/// The dialling side, waiting for the listener's hello.
pub struct Dialler {
    id: TrunkIdentity,
    nonce: [u8; NONCE_LEN],
}

impl Dialler {
    /// Start: the first frame to send.
    pub fn start(id: TrunkIdentity) -> (Dialler, Frame) {
        let n = nonce();
        let mac = id.secret.mac(b"dial", &[&id.me.0, &id.peer.0, &n]).finalize().into_bytes().into();
        let hello = Hello { version: VERSION, from: id.me, to: id.peer, nonce: n, mac };
        (Dialler { id, nonce: n }, hello.frame())
    }

    /// The listener's hello: check it, and the proof to send back. After this
    /// the session carries datagrams.
    pub fn on_hello(self, f: &Frame) -> Result<Frame, HandshakeError> {
        let h = Hello::parse(f)?;
        self.id.check_sender(&h)?;
        self.id
            .secret
            .mac(b"listen", &[&h.from.0, &h.to.0, &self.nonce, &h.nonce])
            .verify_slice(&h.mac)
            .map_err(|_| HandshakeError::BadSecret)?;
        let proof: [u8; MAC_LEN] = self.id.secret.mac(b"proof", &[&self.nonce, &h.nonce]).finalize().into_bytes().into();
        let mut p = Vec::with_capacity(PROOF_LEN);
        p.push(b'P');
        p.extend_from_slice(&proof);
        Ok(Frame::new(FrameKind::Hello, 0, 0, Bytes::from(p)))
    }
}

/// The listening side: its answer sent, waiting for the dialler's proof.
pub struct Listener {
    id: TrunkIdentity,
    dial_nonce: [u8; NONCE_LEN],
    nonce: [u8; NONCE_LEN],
}

impl Listener {
    /// The dialler's hello: check it, and the hello to answer with.
    pub fn on_hello(id: TrunkIdentity, f: &Frame) -> Result<(Listener, Frame), HandshakeError> {
        let h = Hello::parse(f)?;
        id.check_sender(&h)?;
        id.secret.mac(b"dial", &[&h.from.0, &h.to.0, &h.nonce]).verify_slice(&h.mac).map_err(|_| HandshakeError::BadSecret)?;
        let n = nonce();
        let mac = id.secret.mac(b"listen", &[&id.me.0, &id.peer.0, &h.nonce, &n]).finalize().into_bytes().into();
        let answer = Hello { version: VERSION, from: id.me, to: id.peer, nonce: n, mac }.frame();
        Ok((Listener { id, dial_nonce: h.nonce, nonce: n }, answer))
    }

    /// The dialler's proof: after this the session carries datagrams.
    pub fn on_proof(self, f: &Frame) -> Result<(), HandshakeError> {
        if f.kind != FrameKind::Hello {
            return Err(HandshakeError::Unexpected(f.kind));
        }
        let p = &f.payload;
        if p.len() != PROOF_LEN || p[0] != b'P' {
            return Err(HandshakeError::Malformed("not a proof"));
        }
        self.id.secret.mac(b"proof", &[&self.dial_nonce, &self.nonce]).verify_slice(&p[1..]).map_err(|_| HandshakeError::BadSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";

    fn ids(secret_a: &[u8], secret_b: &[u8]) -> (TrunkIdentity, TrunkIdentity) {
        let (a, b) = (VisorKey::parse(A).unwrap(), VisorKey::parse(B).unwrap());
        (
            TrunkIdentity { me: a, peer: b, secret: TrunkSecret::new(secret_a).unwrap() },
            TrunkIdentity { me: b, peer: a, secret: TrunkSecret::new(secret_b).unwrap() },
        )
    }

    #[test]
    fn both_sides_agree_with_the_same_secret() {
        let (a, b) = ids(b"sixteen-byte-key", b"sixteen-byte-key");
        let (dialler, hello) = Dialler::start(a);
        assert_eq!(hello.payload.len(), HELLO_LEN);
        let (listener, answer) = Listener::on_hello(b, &hello).unwrap();
        let proof = dialler.on_hello(&answer).unwrap();
        listener.on_proof(&proof).unwrap();
    }

    #[test]
    fn a_wrong_secret_or_peer_is_refused() {
        let (a, b) = ids(b"sixteen-byte-key", b"another-key-here");
        let (_, hello) = Dialler::start(a.clone());
        assert_eq!(Listener::on_hello(b.clone(), &hello).err(), Some(HandshakeError::BadSecret));
        // A hello from a third visor, or meant for another one.
        let (_, hello) = Dialler::start(TrunkIdentity { me: a.me, peer: a.me, secret: a.secret.clone() });
        assert!(matches!(Listener::on_hello(b, &hello), Err(HandshakeError::NotForMe(_))));
        let (a, b) = ids(b"sixteen-byte-key", b"sixteen-byte-key");
        let (_, hello) = Dialler::start(b.clone());
        assert!(matches!(Listener::on_hello(b, &hello), Err(HandshakeError::WrongPeer { .. })));
        let _ = a;
    }

    #[test]
    fn a_replayed_hello_gets_no_session() {
        let (a, b) = ids(b"sixteen-byte-key", b"sixteen-byte-key");
        let (dialler, hello) = Dialler::start(a);
        let (_, first_answer) = Listener::on_hello(b.clone(), &hello).unwrap();
        let proof = dialler.on_hello(&first_answer).unwrap();
        // The attacker replays the recorded hello and proof to a new listener session.
        let (listener, _) = Listener::on_hello(b, &hello).unwrap();
        assert_eq!(listener.on_proof(&proof), Err(HandshakeError::BadSecret));
    }

    #[test]
    fn malformed_input_is_named() {
        let (_, b) = ids(b"sixteen-byte-key", b"sixteen-byte-key");
        let f = |p: &[u8]| Frame::new(FrameKind::Hello, 0, 0, Bytes::copy_from_slice(p));
        assert_eq!(Listener::on_hello(b.clone(), &f(b"H\x02")).err(), Some(HandshakeError::Version(2)));
        assert_eq!(Listener::on_hello(b.clone(), &f(b"H\x01")).err(), Some(HandshakeError::Malformed("wrong length")));
        assert_eq!(Listener::on_hello(b.clone(), &f(b"")).err(), Some(HandshakeError::Malformed("not a hello")));
        let sip = Frame::new(FrameKind::Sip, 1, 2, Bytes::new());
        assert_eq!(Listener::on_hello(b, &sip).err(), Some(HandshakeError::Unexpected(FrameKind::Sip)));
        assert!(VisorKey::parse("04aa").is_err());
        assert!(VisorKey::parse(&format!("04{}", &A[2..])).is_err(), "uncompressed prefix");
        assert_eq!(TrunkSecret::new(&b"short"[..]).err(), Some(HandshakeError::ShortSecret(5)));
        assert_eq!(format!("{:?}", TrunkSecret::new(&b"sixteen-byte-key"[..]).unwrap()), "TrunkSecret(<hidden>)");
    }
}
