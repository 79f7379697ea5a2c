//! What waits to go out on a carrier: SIP is never dropped; RTP/RTCP waits in a
//! bounded queue that drops its oldest datagram when the carrier stalls, since
//! late media is worse than lost media (the far jitter buffer would only play it
//! out of time). Counters say what was carried and what was dropped.

use std::collections::VecDeque;

use super::frame::{Frame, FrameKind};

/// Frames waiting for the carrier, SIP first.
#[derive(Debug)]
pub struct Outbox {
    signalling: VecDeque<Frame>,
    media: VecDeque<Frame>,
    media_limit: usize,
    pub counters: OutboxCounters,
}

/// What went through an outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    pub sip_queued: u64,
    pub rtp_queued: u64,
    /// RTP frames dropped (the oldest) because the queue was full.
    pub rtp_dropped: u64,
    /// Control frames (keepalives, handshake) queued.
    pub control_queued: u64,
}

impl Outbox {
    /// `media_limit`: RTP frames kept at most (e.g. 50 × streams × 0.2 s).
    pub fn new(media_limit: usize) -> Outbox {
        Outbox { signalling: VecDeque::new(), media: VecDeque::new(), media_limit: media_limit.max(1), counters: OutboxCounters::default() }
    }

    /// Queue a frame. RTP beyond the limit pushes out the oldest RTP frame.
    pub fn push(&mut self, f: Frame) {
        match f.kind {
            FrameKind::Rtp => {
                if self.media.len() >= self.media_limit {
                    self.media.pop_front();
                    self.counters.rtp_dropped += 1;
                }
                self.counters.rtp_queued += 1;
                self.media.push_back(f);
            }
            FrameKind::Sip => {
                self.counters.sip_queued += 1;
                self.signalling.push_back(f);
            }
            FrameKind::Keepalive | FrameKind::KeepaliveEcho | FrameKind::Hello => {
                self.counters.control_queued += 1;
                self.signalling.push_back(f);
            }
        }
    }

    /// The next frame to send: signalling and control before media.
    pub fn pop(&mut self) -> Option<Frame> {
        self.signalling.pop_front().or_else(|| self.media.pop_front())
    }

    /// A frame that could not be sent (the carrier broke): SIP goes back to the
    /// front to be sent first on the next carrier; RTP is stale by then and dropped.
    pub fn unsend(&mut self, f: Frame) {
        match f.kind {
            FrameKind::Rtp => self.counters.rtp_dropped += 1,
            FrameKind::Sip => self.signalling.push_front(f),
            // A new carrier starts with its own handshake and keepalives.
            FrameKind::Keepalive | FrameKind::KeepaliveEcho | FrameKind::Hello => {}
        }
    }

    /// On a new carrier: keepalives and handshake frames of the old one go.
    pub fn drop_control(&mut self) {
        self.signalling.retain(|f| f.kind == FrameKind::Sip);
    }

    pub fn len(&self) -> usize {
        self.signalling.len() + self.media.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(n: u8) -> Frame {
        Frame::new(FrameKind::Rtp, 10000, 10000, vec![n])
    }
    fn sip(n: u8) -> Frame {
        Frame::new(FrameKind::Sip, 5060, 5060, vec![n])
    }

    #[test]
    fn a_stalled_carrier_drops_the_oldest_media_and_no_sip() {
        let mut o = Outbox::new(3);
        for n in 0..10 {
            o.push(rtp(n));
            o.push(sip(n));
        }
        assert_eq!(o.counters, OutboxCounters { sip_queued: 10, rtp_queued: 10, rtp_dropped: 7, control_queued: 0 });
        let out: Vec<(FrameKind, u8)> = std::iter::from_fn(|| o.pop()).map(|f| (f.kind, f.payload[0])).collect();
        let mut want: Vec<(FrameKind, u8)> = (0..10).map(|n| (FrameKind::Sip, n)).collect();
        want.extend((7..10).map(|n| (FrameKind::Rtp, n)));
        assert_eq!(out, want, "all SIP in order, then the newest RTP");
    }

    #[test]
    fn what_a_broken_carrier_could_not_send() {
        let mut o = Outbox::new(10);
        o.push(sip(1));
        o.push(Frame::new(FrameKind::Keepalive, 0, 0, vec![]));
        o.push(sip(2));
        let first = o.pop().unwrap();
        o.unsend(first);
        o.unsend(rtp(9));
        o.drop_control();
        assert_eq!(o.counters.rtp_dropped, 1);
        let out: Vec<u8> = std::iter::from_fn(|| o.pop()).map(|f| f.payload[0]).collect();
        assert_eq!(out, [1, 2], "SIP kept, in order; the keepalive gone");
        assert!(o.is_empty());
    }
}
