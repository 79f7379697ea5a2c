//! A carrier session: the two traits every carrier's halves implement
//! ([`FrameSource`], [`FrameSink`]: frames in, frames out), their stream forms
//! (over a SOCKS5 CONNECT, a TCP forward, or a test's in-memory pipe), and the
//! handshake (hello.rs) driven over a stream, each step with a deadline. The
//! datagram carrier's forms and handshake live in datagram.rs.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, FrameCodec};
use super::hello::{Dialler, HandshakeError, Listener, TrunkIdentity};

/// Why a carrier session could not start (or went on no further).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("trunk handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("the carrier failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the carrier closed the stream")]
    Closed,
    #[error("no answer within {0:?} during the handshake")]
    Timeout(Duration),
    #[error("the carrier was silent for {0:?} (three keepalive periods)")]
    Silent(Duration),
    #[error("the carrier did not carry a frame: {0}")]
    Frame(#[from] super::frame::FrameError),
    #[error("the peer relay started a new handshake from {from}")]
    Restarted { from: std::net::SocketAddr, hello: Frame },
}

/// Frames arriving on a carrier session (a stream's read half, a UDP socket).
pub trait FrameSource: Send {
    /// The next frame; `None` when the carrier ended cleanly.
    fn next_frame(&mut self) -> impl Future<Output = Result<Option<Frame>, SessionError>> + Send;
}

/// Frames leaving on a carrier session.
pub trait FrameSink: Send {
    /// Send these frames in order (a stream carrier writes them at once).
    fn send_frames(&mut self, frames: &[Frame]) -> impl Future<Output = Result<(), SessionError>> + Send;

    fn send_frame(&mut self, f: Frame) -> impl Future<Output = Result<(), SessionError>> + Send {
        async move { self.send_frames(std::slice::from_ref(&f)).await }
    }
}

/// Bytes a stream read may take at once.
const READ_CHUNK: usize = 64 * 1024;

/// Reads frames from a stream carrier.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader { inner, buf: BytesMut::with_capacity(4096) }
    }

    /// The next frame; `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, SessionError> {
        loop {
            if let Some(f) = FrameCodec.decode(&mut self.buf)? {
                return Ok(Some(f));
            }
            // Room for many frames per read: under load one read takes what a
            // batch of datagrams became on the far side.
            self.buf.reserve(READ_CHUNK);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(SessionError::Closed) };
            }
        }
    }
}

impl<R: AsyncRead + Unpin + Send> FrameSource for FrameReader<R> {
    async fn next_frame(&mut self) -> Result<Option<Frame>, SessionError> {
        self.next().await
    }
}

/// Writes frames to a stream carrier.
pub struct FrameWriter<W>(pub W);

impl<W: AsyncWrite + Unpin + Send> FrameSink for FrameWriter<W> {
    async fn send_frames(&mut self, frames: &[Frame]) -> Result<(), SessionError> {
        let mut out = BytesMut::with_capacity(frames.iter().map(|f| super::frame::HEADER_LEN + f.payload.len()).sum());
        for f in frames {
            FrameCodec.encode(f.clone(), &mut out)?;
        }
        self.0.write_all(&out).await?;
        self.0.flush().await?;
        Ok(())
    }
}

/// Write one frame to a stream carrier.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, f: Frame) -> Result<(), SessionError> {
    let mut out = BytesMut::new();
    FrameCodec.encode(f, &mut out)?;
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

async fn within<T>(limit: Duration, fut: impl Future<Output = Result<T, SessionError>>) -> Result<T, SessionError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| SessionError::Timeout(limit))?
}

async fn expect_frame<R: AsyncRead + Unpin>(r: &mut FrameReader<R>) -> Result<Frame, SessionError> {
    r.next().await?.ok_or(SessionError::Closed)
}

/// The dialling relay's side of the handshake, each step within `limit`.
pub async fn dial<R, W>(r: &mut FrameReader<R>, w: &mut W, id: TrunkIdentity, limit: Duration) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (dialler, hello) = Dialler::start(id);
    within(limit, write_frame(w, hello)).await?;
    let answer = within(limit, expect_frame(r)).await?;
    let proof = dialler.on_hello(&answer)?;
    within(limit, write_frame(w, proof)).await
}

/// The listening relay's side of the handshake, each step within `limit`.
pub async fn accept<R, W>(r: &mut FrameReader<R>, w: &mut W, id: TrunkIdentity, limit: Duration) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = within(limit, expect_frame(r)).await?;
    let (listener, answer) = Listener::on_hello(id, &hello)?;
    within(limit, write_frame(w, answer)).await?;
    let proof = within(limit, expect_frame(r)).await?;
    Ok(listener.on_proof(&proof)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunk::frame::FrameKind;
    use crate::trunk::hello::{TrunkSecret, VisorKey};

    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";

    fn id(me: &str, peer: &str, secret: &[u8]) -> TrunkIdentity {
        TrunkIdentity { me: VisorKey::parse(me).unwrap(), peer: VisorKey::parse(peer).unwrap(), secret: TrunkSecret::new(secret).unwrap() }
    }

    #[tokio::test]
    async fn two_relays_handshake_then_carry_frames() {
        let (a, b) = tokio::io::duplex(1024);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, mut bw) = tokio::io::split(b);
        let (mut ar, mut br) = (FrameReader::new(ar), FrameReader::new(br));
        let limit = Duration::from_secs(2);
        let listen = tokio::spawn(async move {
            accept(&mut br, &mut bw, id(B, A, b"the-trunk-secret"), limit).await.unwrap();
            br.next().await.unwrap()
        });
        dial(&mut ar, &mut aw, id(A, B, b"the-trunk-secret"), limit).await.unwrap();
        let invite = Frame::new(FrameKind::Sip, 5060, 5060, &b"INVITE sip:+4930123456@127.77.0.2 SIP/2.0\r\n"[..]);
        write_frame(&mut aw, invite.clone()).await.unwrap();
        assert_eq!(listen.await.unwrap(), Some(invite));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_and_a_silent_peer_times_out() {
        let (a, b) = tokio::io::duplex(1024);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, mut bw) = tokio::io::split(b);
        let (mut ar, mut br) = (FrameReader::new(ar), FrameReader::new(br));
        let limit = Duration::from_millis(300);
        let listen = tokio::spawn(async move { accept(&mut br, &mut bw, id(B, A, b"the-trunk-secret"), limit).await });
        let dialled = dial(&mut ar, &mut aw, id(A, B, b"not-the-secret!!"), limit).await;
        let refused = listen.await.unwrap();
        assert!(matches!(refused, Err(SessionError::Handshake(HandshakeError::BadSecret))), "{refused:?}");
        // The listener said nothing and dropped the stream: the dialler does not hang.
        assert!(matches!(dialled, Err(SessionError::Closed | SessionError::Timeout(_))), "{dialled:?}");

        let (c, _silent) = tokio::io::duplex(1024);
        let (cr, mut cw) = tokio::io::split(c);
        let t0 = std::time::Instant::now();
        let r = dial(&mut FrameReader::new(cr), &mut cw, id(A, B, b"the-trunk-secret"), limit).await;
        assert!(matches!(r, Err(SessionError::Timeout(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn garbage_on_the_carrier_ends_the_session_with_a_reason() {
        let (a, mut b) = tokio::io::duplex(1024);
        let (ar, _aw) = tokio::io::split(a);
        b.write_all(b"\x00\x05\x09\x00\x00\x00\x00").await.unwrap();
        let e = FrameReader::new(ar).next().await.unwrap_err();
        assert!(e.to_string().contains("unknown kind 9"), "{e}");
    }
}
