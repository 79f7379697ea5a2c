//! Keeping a trunk up: the dialling relay opens its carrier, handshakes and
//! carries until the carrier fails, then dials again after a capped,
//! doubling backoff; the listening relay accepts carriers one after another.
//! The link's state (up or down, sessions, the last failure) is what the hosts
//! show (`privateness show trunks`, `privateness.trunks`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::carrier::Carrier;
use super::datagram::{self, DatagramListener};
use super::hello::TrunkIdentity;
use super::relay::Relay;
use super::session::{FrameReader, FrameWriter, SessionError, accept, dial};

/// Timings of a link.
#[derive(Clone, Copy, Debug)]
pub struct LinkTimings {
    /// Deadline of a carrier connect and of each handshake step.
    pub connect: Duration,
    /// Keepalive period; three silent periods declare the carrier dead.
    pub keepalive: Duration,
    /// First and largest wait between dials.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for LinkTimings {
    fn default() -> Self {
        LinkTimings { connect: Duration::from_secs(5), keepalive: Duration::from_secs(3), backoff_min: Duration::from_millis(250), backoff_max: Duration::from_secs(30) }
    }
}

/// What a link has been doing.
#[derive(Debug, Default)]
pub struct LinkState {
    pub up: AtomicBool,
    /// Carrier sessions that passed the handshake.
    pub sessions: AtomicU64,
    /// Dials, handshakes or sessions that failed.
    pub failures: AtomicU64,
    pub last_failure: Mutex<String>,
}

impl LinkState {
    fn failed(&self, why: String) {
        self.up.store(false, Ordering::SeqCst);
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("trunk: {why}");
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// The wait before the next dial: doubling from `min`, at most `max`, back to
/// `min` after a session that worked.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { next: min, min, max: max.max(min) }
    }

    pub fn next_wait(&mut self) -> Duration {
        let w = self.next;
        self.next = (self.next * 2).min(self.max);
        w
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Wait `d`, or less if told to stop (then true).
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// One dialled carrier session: open, handshake, carry until it fails.
async fn dial_once(relay: &Relay, carrier: &Carrier, id: &TrunkIdentity, t: LinkTimings, state: &LinkState) -> Result<(), String> {
    let up = || {
        tracing::info!("trunk: up to visor {} ({carrier:?})", id.peer);
        state.sessions.fetch_add(1, Ordering::Relaxed);
        state.up.store(true, Ordering::SeqCst);
    };
    let ended = match carrier {
        Carrier::Stream(stream) => {
            let (r, mut w) = stream.connect(t.connect).await.map_err(|e| e.to_string())?.into_split();
            let mut r = FrameReader::new(r);
            dial(&mut r, &mut w, id.clone(), t.connect).await.map_err(|e| e.to_string())?;
            up();
            relay.carry(r, FrameWriter(w), t.keepalive).await
        }
        Carrier::Udp { forward } => {
            let bind: std::net::SocketAddr = if forward.is_ipv4() { ([127, 0, 0, 1], 0).into() } else { (std::net::Ipv6Addr::LOCALHOST, 0).into() };
            let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| format!("udp carrier: {e}"))?;
            sock.connect(forward).await.map_err(|e| format!("udp carrier to {forward}: {e}"))?;
            let (source, sink) = datagram::dial(Arc::new(sock), id.clone(), t.connect).await.map_err(|e| format!("{carrier:?}: {e}"))?;
            up();
            relay.carry(source, sink, t.keepalive).await
        }
    };
    Err(format!("the carrier ended: {ended}"))
}

/// The dialling side, until `stop` turns true.
pub async fn dial_forever(relay: Arc<Relay>, carrier: Carrier, id: TrunkIdentity, t: LinkTimings, state: Arc<LinkState>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(t.backoff_min, t.backoff_max);
    while !*stop.borrow() {
        let outcome = tokio::select! {
            r = dial_once(&relay, &carrier, &id, t, &state) => r,
            _ = stop.changed() => break,
        };
        let worked = state.up.load(Ordering::SeqCst);
        if let Err(why) = outcome {
            state.failed(why);
        }
        if worked {
            backoff.reset();
        }
        if pause(backoff.next_wait(), &mut stop).await {
            break;
        }
    }
    state.up.store(false, Ordering::SeqCst);
}

/// The listening side: one carrier at a time, until `stop` turns true.
pub async fn listen_forever(relay: Arc<Relay>, listener: TcpListener, id: TrunkIdentity, t: LinkTimings, state: Arc<LinkState>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let session = async {
            let (s, from) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
            let _ = s.set_nodelay(true);
            let (r, mut w) = s.into_split();
            let mut r = FrameReader::new(r);
            accept(&mut r, &mut w, id.clone(), t.connect).await.map_err(|e| format!("carrier from {from}: {e}"))?;
            tracing::info!("trunk: up to visor {} (carrier from {from})", id.peer);
            state.sessions.fetch_add(1, Ordering::Relaxed);
            state.up.store(true, Ordering::SeqCst);
            Err::<(), String>(format!("the carrier ended: {}", relay.carry(r, FrameWriter(w), t.keepalive).await))
        };
        let outcome = tokio::select! {
            r = session => r,
            _ = stop.changed() => break,
        };
        if let Err(why) = outcome {
            state.failed(why);
        }
    }
    state.up.store(false, Ordering::SeqCst);
}

/// The listening side of a UDP carrier: one dialler at a time; a new
/// dialler's hello ends the current session and starts the next.
pub async fn listen_udp_forever(relay: Arc<Relay>, mut listener: DatagramListener, id: TrunkIdentity, t: LinkTimings, state: Arc<LinkState>, mut stop: watch::Receiver<bool>) {
    let mut next_hello = None;
    while !*stop.borrow() {
        let session = async {
            let (source, sink) = listener.accept(id.clone(), t.connect, next_hello.take()).await.map_err(|e| (format!("udp carrier: {e}"), None))?;
            tracing::info!("trunk: up to visor {} (udp carrier)", id.peer);
            state.sessions.fetch_add(1, Ordering::Relaxed);
            state.up.store(true, Ordering::SeqCst);
            match relay.carry(source, sink, t.keepalive).await {
                SessionError::Restarted { from, hello } => Err((format!("the carrier ended: the peer relay started again from {from}"), Some((hello, from)))),
                e => Err((format!("the carrier ended: {e}"), None)),
            }
        };
        let outcome: Result<(), _> = tokio::select! {
            r = session => r,
            _ = stop.changed() => break,
        };
        if let Err((why, hello)) = outcome {
            state.failed(why);
            next_hello = hello;
        }
    }
    state.up.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(250));
    }
}
