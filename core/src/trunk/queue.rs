//! What waits to go out on a carrier: SIP is never dropped; RTP/RTCP waits in a
//! bounded queue that drops its oldest datagram when the carrier stalls, and
//! any datagram older than the queue's age limit when the carrier comes back,
//! since late media is worse than lost media (the far jitter buffer would only
//! discard it, after a burst). Counters say what was carried and what was dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::{Frame, FrameKind};

/// How much RTP waits for a stalled carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaQueue {
    /// RTP frames kept at most (e.g. 50 × streams × 0.2 s); the oldest go first.
    pub limit: usize,
    /// RTP older than this is not sent at all.
    pub max_age: Duration,
}

impl Default for MediaQueue {
    fn default() -> Self {
        MediaQueue { limit: 2000, max_age: Duration::from_millis(200) }
    }
}

/// Frames waiting for the carrier, SIP first.
#[derive(Debug)]
pub struct Outbox {
    signalling: VecDeque<Frame>,
    media: VecDeque<(Instant, Frame)>,
    media_queue: MediaQueue,
    pub counters: OutboxCounters,
}

/// What went through an outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    pub sip_queued: u64,
    pub rtp_queued: u64,
    /// RTP frames dropped: the oldest because the queue was full, or too old to send.
    pub rtp_dropped: u64,
    /// Control frames (keepalives, handshake) queued.
    pub control_queued: u64,
}

impl Outbox {
    pub fn new(media_queue: MediaQueue) -> Outbox {
        let media_queue = MediaQueue { limit: media_queue.limit.max(1), ..media_queue };
        Outbox { signalling: VecDeque::new(), media: VecDeque::new(), media_queue, counters: OutboxCounters::default() }
    }

    /// Queue a frame. RTP beyond the limit pushes out the oldest RTP frame.
    pub fn push(&mut self, f: Frame) {
        match f.kind {
            FrameKind::Rtp => {
                if self.media.len() >= self.media_queue.limit {
                    self.media.pop_front();
                    self.counters.rtp_dropped += 1;
                }
                self.counters.rtp_queued += 1;
                self.media.push_back((Instant::now(), f));
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

    /// The next frame to send: signalling and control before media; media
    /// past its age limit is dropped on the way.
    pub fn pop(&mut self) -> Option<Frame> {
        if let Some(f) = self.signalling.pop_front() {
            return Some(f);
        }
        while let Some((queued, f)) = self.media.pop_front() {
            if queued.elapsed() <= self.media_queue.max_age {
                return Some(f);
            }
            self.counters.rtp_dropped += 1;
        }
        None
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
        let mut o = Outbox::new(MediaQueue { limit: 3, max_age: Duration::from_secs(60) });
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
        let mut o = Outbox::new(MediaQueue::default());
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

    #[test]
    fn media_too_old_to_play_is_not_sent() {
        let mut o = Outbox::new(MediaQueue { limit: 100, max_age: Duration::from_millis(30) });
        o.push(rtp(1));
        o.push(sip(2));
        std::thread::sleep(Duration::from_millis(60));
        o.push(rtp(3));
        let out: Vec<u8> = std::iter::from_fn(|| o.pop()).map(|f| f.payload[0]).collect();
        assert_eq!(out, [2, 3], "SIP is never too old; the stale RTP went");
        assert_eq!(o.counters.rtp_dropped, 1);
    }
}
