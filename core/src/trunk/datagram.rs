//! The datagram carrier (docs/skywire.md §3): one UDP flow to a faithful-UDP
//! forward (`skywire cli skynet port udp-dial <pk> <port> --local-port L` on the
//! dialling side, `skynet port add <port> --udp` on the listening side). Each
//! frame is one datagram without the length prefix, so a lost RTP packet stalls
//! nothing behind it, unlike a stream carrier.
//!
//! The carrier may lose, reorder or duplicate datagrams, so the handshake
//! retransmits: the dialler repeats its hello until the answer comes and its
//! proof until the listener's first frame comes; the listener answers every
//! copy of the hello it is handshaking with and starts a new handshake when a
//! *new* hello arrives (the dialling relay restarted). After the handshake the
//! listener takes datagrams only from the address that completed it (one bridge
//! is one local UDP peer). SIP lost on the way is recovered by SIP's own
//! retransmissions, as on any UDP path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::frame::{Frame, FrameKind, MAX_PAYLOAD};
use super::hello::{Dialler, HandshakeError, Listener, TrunkIdentity};
use super::session::{FrameSink, FrameSource, SessionError};

/// How often an unanswered handshake message is sent again.
pub const RETRY: Duration = Duration::from_millis(250);

/// Frames arriving from the peer relay on a UDP flow.
pub struct DatagramSource {
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
    /// A frame the handshake already read (the listener's first datagram).
    first: Option<Frame>,
    /// The hello that started this session (its late copies are ignored).
    hello: Option<Frame>,
    bad: u64,
    buf: Vec<u8>,
}

/// Frames leaving for the peer relay on a UDP flow.
pub struct DatagramSink {
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl FrameSink for DatagramSink {
    async fn send_frames(&mut self, frames: &[Frame]) -> Result<(), SessionError> {
        for f in frames {
            self.sock.send_to(&f.to_datagram()?, self.peer).await?;
        }
        Ok(())
    }
}

impl FrameSource for DatagramSource {
    async fn next_frame(&mut self) -> Result<Option<Frame>, SessionError> {
        if let Some(f) = self.first.take() {
            return Ok(Some(f));
        }
        loop {
            let (n, from) = self.sock.recv_from(&mut self.buf).await?;
            let f = match Frame::from_datagram(&self.buf[..n]) {
                Ok(f) => f,
                Err(e) => {
                    // A datagram cannot desynchronise the flow: skip it, say so sparingly.
                    self.bad += 1;
                    if self.bad.is_power_of_two() {
                        tracing::warn!("trunk: {} bad datagram(s) on the UDP carrier from {from}, the last: {e}", self.bad);
                    }
                    continue;
                }
            };
            if f.kind != FrameKind::Hello {
                if from == self.peer {
                    return Ok(Some(f));
                }
                continue;
            }
            // Handshake traffic while up: late copies are ignored; a new hello
            // (the dialling relay restarted, maybe from a new port) restarts.
            let is_new_hello = f.payload.first() == Some(&b'H') && self.hello.as_ref().is_some_and(|h| h.payload != f.payload);
            if is_new_hello {
                return Err(SessionError::Restarted { from, hello: f });
            }
        }
    }
}

async fn recv_frame(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(Option<Frame>, SocketAddr)> {
    let (n, from) = sock.recv_from(buf).await?;
    Ok((Frame::from_datagram(&buf[..n]).ok(), from))
}

/// Send `message` every [`RETRY`] until a frame that `wanted` accepts
/// arrives, at most `limit`.
async fn send_until(sock: &UdpSocket, message: &[u8], buf: &mut [u8], limit: Duration, wanted: impl Fn(&Frame) -> bool) -> Result<Frame, SessionError> {
    let deadline = Instant::now() + limit;
    loop {
        sock.send(message).await?;
        let wait = (Instant::now() + RETRY).min(deadline);
        match tokio::time::timeout_at(wait, recv_frame(sock, buf)).await {
            Ok(Ok((Some(f), _))) if wanted(&f) => return Ok(f),
            Ok(Ok(_)) => {}
            // A forward not listening yet answers with ICMP port unreachable: keep trying.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => tokio::time::sleep_until(wait).await,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(SessionError::Timeout(limit));
        }
    }
}

/// The dialling side: handshake over `sock` (connected to the local forward
/// port), each step within `limit`, retransmitting every [`RETRY`].
pub async fn dial(sock: Arc<UdpSocket>, id: TrunkIdentity, limit: Duration) -> Result<(DatagramSource, DatagramSink), SessionError> {
    let peer = sock.peer_addr()?;
    let mut buf = vec![0u8; MAX_PAYLOAD + 5];
    let (dialler, hello) = Dialler::start(id);
    let hello = hello.to_datagram()?;
    // 1. Our hello, until an answer comes.
    let answer = send_until(&sock, &hello, &mut buf, limit, |f| f.kind == FrameKind::Hello && f.payload.first() == Some(&b'H')).await?;
    let proof = dialler.on_hello(&answer)?.to_datagram()?;
    // 2. Our proof, until the listener's first frame comes.
    let first = send_until(&sock, &proof, &mut buf, limit, |f| f.kind != FrameKind::Hello).await?;
    let first = (first.kind != FrameKind::Keepalive).then_some(first);
    let source = DatagramSource { sock: sock.clone(), peer, first, hello: None, bad: 0, buf };
    Ok((source, DatagramSink { sock, peer }))
}

/// The listening side's UDP socket, and the last hello it refused (its
/// retransmitted copies are ignored rather than refused again and again).
pub struct DatagramListener {
    sock: Arc<UdpSocket>,
    refused: Option<bytes::Bytes>,
}

impl DatagramListener {
    pub fn new(sock: UdpSocket) -> DatagramListener {
        DatagramListener { sock: Arc::new(sock), refused: None }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Wait for a dialler's hello (or start from `first`, a hello that ended
    /// the previous session), answer it, and wait for the proof within
    /// `limit`. The session then belongs to the hello's sender.
    pub async fn accept(&mut self, id: TrunkIdentity, limit: Duration, first: Option<(Frame, SocketAddr)>) -> Result<(DatagramSource, DatagramSink), SessionError> {
        let sock = self.sock.clone();
        let mut buf = vec![0u8; MAX_PAYLOAD + 5];
        let (mut hello, mut from) = match first {
            Some(h) => h,
            None => loop {
                if let (Some(f), from) = recv_frame(&sock, &mut buf).await?
                    && f.kind == FrameKind::Hello
                    && f.payload.first() == Some(&b'H')
                    && self.refused.as_ref() != Some(&f.payload)
                {
                    break (f, from);
                }
            },
        };
        'handshake: loop {
            let (listener, answer) = match Listener::on_hello(id.clone(), &hello) {
                Ok(ok) => ok,
                Err(e) => {
                    self.refused = Some(hello.payload.clone());
                    return Err(e.into());
                }
            };
            let answer = answer.to_datagram()?;
            sock.send_to(&answer, from).await?;
            let deadline = Instant::now() + limit;
            loop {
                let got = tokio::time::timeout_at(deadline, recv_frame(&sock, &mut buf)).await.map_err(|_| SessionError::Timeout(limit))??;
                let (Some(f), sender) = got else { continue };
                if f.kind != FrameKind::Hello {
                    continue;
                }
                match f.payload.first() {
                    // The same hello again: our answer was lost.
                    Some(b'H') if f.payload == hello.payload => sock.send_to(&answer, from).await.map(drop)?,
                    Some(b'H') if self.refused.as_ref() == Some(&f.payload) => {}
                    // Another hello: the dialler started again.
                    Some(b'H') => {
                        (hello, from) = (f, sender);
                        continue 'handshake;
                    }
                    Some(b'P') if sender == from => {
                        listener.on_proof(&f)?;
                        break 'handshake;
                    }
                    Some(b'P') => {}
                    _ => return Err(HandshakeError::Malformed("neither a hello nor a proof").into()),
                }
            }
        }
        // Our first frame tells the dialler the proof arrived.
        let mut sink = DatagramSink { sock: sock.clone(), peer: from };
        sink.send_frame(Frame::new(FrameKind::Keepalive, 0, 0, Vec::new())).await?;
        Ok((DatagramSource { sock, peer: from, first: None, hello: Some(hello), bad: 0, buf }, sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunk::hello::{TrunkSecret, VisorKey};

    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";

    fn id(me: &str, peer: &str, secret: &[u8]) -> TrunkIdentity {
        TrunkIdentity { me: VisorKey::parse(me).unwrap(), peer: VisorKey::parse(peer).unwrap(), secret: TrunkSecret::new(secret).unwrap() }
    }

    async fn pair() -> (Arc<UdpSocket>, DatagramListener) {
        let l = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let d = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        d.connect(l.local_addr().unwrap()).await.unwrap();
        (Arc::new(d), DatagramListener::new(l))
    }

    #[tokio::test]
    async fn handshake_then_frames_both_ways() {
        let (d, mut l) = pair().await;
        let listen = tokio::spawn(async move { l.accept(id(B, A, b"the-trunk-secret"), Duration::from_secs(2), None).await });
        let (mut ds, mut dk) = dial(d, id(A, B, b"the-trunk-secret"), Duration::from_secs(2)).await.unwrap();
        let (mut ls, mut lk) = listen.await.unwrap().unwrap();
        let invite = Frame::new(FrameKind::Sip, 5060, 5060, &b"INVITE sip:+4930123456@127.77.0.2 SIP/2.0\r\n"[..]);
        dk.send_frame(invite.clone()).await.unwrap();
        assert_eq!(ls.next_frame().await.unwrap(), Some(invite));
        let rtp = Frame::new(FrameKind::Rtp, 10000, 10002, vec![0x80; 172]);
        lk.send_frame(rtp.clone()).await.unwrap();
        assert_eq!(ds.next_frame().await.unwrap(), Some(rtp));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_and_a_silent_forward_times_out() {
        let (d, mut l) = pair().await;
        let listen = tokio::spawn(async move { l.accept(id(B, A, b"the-trunk-secret"), Duration::from_millis(600), None).await });
        let dialled = dial(d, id(A, B, b"not-the-secret!!"), Duration::from_millis(600)).await;
        assert!(matches!(listen.await.unwrap(), Err(SessionError::Handshake(HandshakeError::BadSecret))));
        assert!(matches!(dialled, Err(SessionError::Timeout(_))), "{:?}", dialled.err());

        let (d, _silent) = pair().await;
        let t0 = std::time::Instant::now();
        assert!(matches!(dial(d, id(A, B, b"the-trunk-secret"), Duration::from_millis(400)).await, Err(SessionError::Timeout(_))));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_restarted_dialler_takes_the_session_over_and_stray_datagrams_are_ignored() {
        let (d, mut l) = pair().await;
        let addr = l.local_addr().unwrap();
        let listen = tokio::spawn(async move {
            let s = l.accept(id(B, A, b"the-trunk-secret"), Duration::from_secs(2), None).await;
            (l, s)
        });
        let _first = dial(d, id(A, B, b"the-trunk-secret"), Duration::from_secs(2)).await.unwrap();
        let (mut l, s) = listen.await.unwrap();
        let (mut ls, _lk) = s.unwrap();

        // Junk and a stranger's RTP are skipped, not fatal.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stranger.send_to(b"\x09junk", addr).await.unwrap();
        stranger.send_to(&Frame::new(FrameKind::Rtp, 1, 2, vec![1]).to_datagram().unwrap(), addr).await.unwrap();

        // The dialling relay restarts on a new port.
        let d2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        d2.connect(addr).await.unwrap();
        let again = tokio::spawn(dial(Arc::new(d2), id(A, B, b"the-trunk-secret"), Duration::from_secs(2)));
        let Err(SessionError::Restarted { from, hello }) = ls.next_frame().await else { panic!("the session should restart") };
        let (mut ls2, _) = l.accept(id(B, A, b"the-trunk-secret"), Duration::from_secs(2), Some((hello, from))).await.unwrap();
        let (_, mut dk2) = again.await.unwrap().unwrap();
        dk2.send_frame(Frame::new(FrameKind::Sip, 5060, 5060, &b"OPTIONS"[..])).await.unwrap();
        assert_eq!(ls2.next_frame().await.unwrap().unwrap().payload, &b"OPTIONS"[..]);
    }
}
