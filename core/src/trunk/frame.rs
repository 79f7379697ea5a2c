//! The trunk's frame (docs/skywire.md §3): every SIP or RTP/RTCP datagram
//! crosses the carrier as one frame, with the ports it was sent from and to so
//! the far relay can re-emit it unchanged (no SIP or SDP rewriting).
//!
//! On a stream carrier (SOCKS5 CONNECT, TCP forward) each frame is
//! `u16 BE length | u8 kind | u16 BE src port | u16 BE dst port | payload`,
//! where the length counts everything after itself (5 + payload). On a
//! datagram carrier (UDP forward) one datagram is one frame without the length.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of a frame before its payload on a stream (length, kind, two ports).
pub const HEADER_LEN: usize = 7;
/// The largest payload a frame carries (the u16 length covers kind and ports too).
pub const MAX_PAYLOAD: usize = u16::MAX as usize - 5;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A SIP datagram: never dropped.
    Sip = 0,
    /// An RTP or RTCP datagram: the oldest are dropped when the carrier stalls.
    Rtp = 1,
    /// A keepalive; the payload is echoed back by the peer (`KeepaliveEcho`).
    Keepalive = 2,
    /// A handshake message (hello.rs).
    Hello = 3,
    /// The answer to a keepalive, with its payload: the round-trip time.
    KeepaliveEcho = 4,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            0 => FrameKind::Sip,
            1 => FrameKind::Rtp,
            2 => FrameKind::Keepalive,
            3 => FrameKind::Hello,
            4 => FrameKind::KeepaliveEcho,
            _ => return None,
        })
    }
}

/// One datagram (or control message) on the trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Bytes,
}

/// Why bytes from a carrier are not a frame. Any of these ends the carrier
/// session (a stream cannot resynchronise after a bad length).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("trunk frame: unknown kind {0} (a peer speaking another protocol or version?)")]
    UnknownKind(u8),
    #[error("trunk frame: length {0} is shorter than the 5 bytes of kind and ports")]
    TooShort(usize),
    #[error("trunk frame: a {0}-byte payload is larger than the {MAX_PAYLOAD} a frame carries")]
    TooLarge(usize),
}

impl Frame {
    pub fn new(kind: FrameKind, src_port: u16, dst_port: u16, payload: impl Into<Bytes>) -> Frame {
        Frame { kind, src_port, dst_port, payload: payload.into() }
    }

    /// The frame as one datagram (no length prefix).
    pub fn to_datagram(&self) -> Result<Vec<u8>, FrameError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(self.payload.len()));
        }
        let mut out = Vec::with_capacity(5 + self.payload.len());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// A datagram from a datagram carrier.
    pub fn from_datagram(d: &[u8]) -> Result<Frame, FrameError> {
        if d.len() < 5 {
            return Err(FrameError::TooShort(d.len()));
        }
        let kind = FrameKind::from_u8(d[0]).ok_or(FrameError::UnknownKind(d[0]))?;
        Ok(Frame {
            kind,
            src_port: u16::from_be_bytes([d[1], d[2]]),
            dst_port: u16::from_be_bytes([d[3], d[4]]),
            payload: Bytes::copy_from_slice(&d[5..]),
        })
    }
}

/// The stream carriers' codec (tokio-util's `Framed` turns a socket into a
/// stream and sink of frames).
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if src.len() < 2 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([src[0], src[1]]) as usize;
        if len < 5 {
            return Err(invalid(FrameError::TooShort(len)));
        }
        // A bad kind is refused as soon as it arrives, not after its payload.
        if let Some(&k) = src.get(2)
            && FrameKind::from_u8(k).is_none()
        {
            return Err(invalid(FrameError::UnknownKind(k)));
        }
        if src.len() < 2 + len {
            src.reserve(2 + len - src.len());
            return Ok(None);
        }
        src.advance(2);
        let body = src.split_to(len).freeze();
        let kind = FrameKind::from_u8(body[0]).ok_or_else(|| invalid(FrameError::UnknownKind(body[0])))?;
        Ok(Some(Frame {
            kind,
            src_port: u16::from_be_bytes([body[1], body[2]]),
            dst_port: u16::from_be_bytes([body[3], body[4]]),
            payload: body.slice(5..),
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, f: Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        if f.payload.len() > MAX_PAYLOAD {
            return Err(invalid(FrameError::TooLarge(f.payload.len())));
        }
        dst.reserve(HEADER_LEN + f.payload.len());
        dst.put_u16((5 + f.payload.len()) as u16);
        dst.put_u8(f.kind as u8);
        dst.put_u16(f.src_port);
        dst.put_u16(f.dst_port);
        dst.extend_from_slice(&f.payload);
        Ok(())
    }
}

fn invalid(e: FrameError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: &Frame) -> BytesMut {
        let mut b = BytesMut::new();
        FrameCodec.encode(f.clone(), &mut b).unwrap();
        b
    }

    #[test]
    fn the_wire_layout_is_seven_bytes_then_the_payload() {
        let f = Frame::new(FrameKind::Sip, 5060, 5061, &b"INVITE"[..]);
        assert_eq!(&encoded(&f)[..], b"\x00\x0b\x00\x13\xc4\x13\xc5INVITE");
        assert_eq!(f.to_datagram().unwrap(), b"\x00\x13\xc4\x13\xc5INVITE");
        assert_eq!(Frame::from_datagram(&f.to_datagram().unwrap()).unwrap(), f);
    }

    #[test]
    fn a_stream_yields_frames_however_it_is_split() {
        let frames = [
            Frame::new(FrameKind::Rtp, 10000, 10002, vec![0x80; 172]),
            Frame::new(FrameKind::Keepalive, 0, 0, Bytes::new()),
            Frame::new(FrameKind::Sip, 5060, 5060, vec![b'x'; MAX_PAYLOAD]),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&encoded(f));
        }
        for chunk in [1, 2, 7, 100, wire.len()] {
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                src.extend_from_slice(piece);
                while let Some(f) = FrameCodec.decode(&mut src).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split every {chunk} bytes");
            assert!(src.is_empty());
        }
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let mut src = BytesMut::from(&b"\x00\x04\x00\x00\x00\x00"[..]);
        assert!(FrameCodec.decode(&mut src).unwrap_err().to_string().contains("shorter than"));
        let mut src = BytesMut::from(&b"\x00\x05\x09"[..]);
        assert!(FrameCodec.decode(&mut src).unwrap_err().to_string().contains("unknown kind 9"));
        assert_eq!(Frame::from_datagram(b"\x01\x00"), Err(FrameError::TooShort(2)));
        assert_eq!(Frame::from_datagram(b"\x07\x00\x00\x00\x00"), Err(FrameError::UnknownKind(7)));
        let big = Frame::new(FrameKind::Rtp, 1, 2, vec![0; MAX_PAYLOAD + 1]);
        assert_eq!(big.to_datagram(), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
        assert!(FrameCodec.encode(big, &mut BytesMut::new()).is_err());
    }
}
