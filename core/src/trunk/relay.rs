//! The relay's datagram side (docs/skywire.md §3, "mirrored aliases"): it owns
//! the peer PBX's address on this host, binding the peer's SIP port and RTP
//! range there. A datagram the local PBX sends to one of those sockets becomes
//! a frame (its source port, the port it was sent to); a frame from the carrier
//! is sent *from* the owned address and the frame's source port *to* the local
//! PBX at the frame's destination port. Both PBXes thus see each other's real
//! ports, and SIP Via/Contact and SDP stay valid without rewriting.
//!
//! [`Relay::carry`] runs one carrier session (after its handshake) until the
//! carrier fails; the caller re-dials. SIP waits for the next session; RTP that
//! the carrier cannot take is dropped oldest first (queue.rs).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::frame::{Frame, FrameKind, MAX_PAYLOAD};
use super::queue::{MediaQueue, Outbox};
use super::session::{FrameSink, FrameSource, SessionError};

/// Receive buffer of an RTP socket: RTP, even video, stays under the MTU.
const RTP_BUFFER: usize = 4096;
/// At most this many bytes of frames go to the carrier in one write.
const BATCH_BYTES: usize = 32 * 1024;

/// Which addresses and ports a relay handles.
#[derive(Clone, Debug)]
pub struct RelayPorts {
    /// The local PBX's address (frames from the carrier go to it).
    pub local: IpAddr,
    /// The peer PBX's address on this host, owned by the relay.
    pub owned: IpAddr,
    /// The peer's SIP port(s): datagrams on them are SIP, never dropped.
    pub sip: Vec<u16>,
    /// The peer's RTP/RTCP ports (a narrow range for trunk calls).
    pub rtp: std::ops::RangeInclusive<u16>,
}

/// What the relay did, for `privateness show trunks` / `privateness.trunks`.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub sip_out: AtomicU64,
    pub rtp_out: AtomicU64,
    pub sip_in: AtomicU64,
    pub rtp_in: AtomicU64,
    /// RTP dropped because the carrier stalled or broke.
    pub rtp_dropped: AtomicU64,
    /// Frames for a port this relay does not own (a peer misconfiguration).
    pub unroutable: AtomicU64,
}

/// The bound sockets and what waits for the carrier.
pub struct Relay {
    ports: RelayPorts,
    sockets: HashMap<u16, Arc<UdpSocket>>,
    outbox: Arc<(Mutex<Outbox>, Notify)>,
    pub counters: Arc<RelayCounters>,
    readers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    /// Bind the owned address's ports and start reading them. `media`: how
    /// much RTP waits while the carrier stalls.
    pub async fn bind(ports: RelayPorts, media: MediaQueue) -> std::io::Result<Relay> {
        let mut sockets = HashMap::new();
        for port in ports.sip.iter().copied().chain(ports.rtp.clone()) {
            let s = UdpSocket::bind(SocketAddr::new(ports.owned, port))
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("trunk relay: cannot bind {}:{port}: {e}", ports.owned)))?;
            sockets.insert(port, Arc::new(s));
        }
        let outbox = Arc::new((Mutex::new(Outbox::new(media)), Notify::new()));
        let counters = Arc::new(RelayCounters::default());
        let mut readers = Vec::new();
        for (&port, s) in &sockets {
            let sip = ports.sip.contains(&port);
            let (s, ob, c, local) = (s.clone(), outbox.clone(), counters.clone(), ports.local);
            readers.push(tokio::spawn(async move {
                let (kind, counter) = if sip { (FrameKind::Sip, &c.sip_out) } else { (FrameKind::Rtp, &c.rtp_out) };
                // SIP may fill a UDP datagram; RTP (even video) stays under the MTU.
                let mut buf = vec![0u8; if sip { MAX_PAYLOAD } else { RTP_BUFFER }];
                loop {
                    let Ok((n, from)) = s.recv_from(&mut buf).await else { continue };
                    // Only the local PBX may use the trunk.
                    if from.ip() != local {
                        continue;
                    }
                    // Into the outbox at once, whatever the carrier is doing.
                    counter.fetch_add(1, Ordering::Relaxed);
                    let mut o = lock(&ob.0);
                    o.push(Frame::new(kind, from.port(), port, buf[..n].to_vec()));
                    c.rtp_dropped.store(o.counters.rtp_dropped, Ordering::Relaxed);
                    drop(o);
                    ob.1.notify_one();
                }
            }));
        }
        Ok(Relay { ports, sockets, outbox, counters, readers: Mutex::new(readers) })
    }

    /// Carry frames both ways over one carrier session until it fails
    /// (the reason is returned). Keepalives go out every `keepalive`; a
    /// carrier silent for three of them is declared dead.
    pub async fn carry(&self, mut source: impl FrameSource, mut sink: impl FrameSink, keepalive: Duration) -> SessionError {
        lock(&self.outbox.0).drop_control();
        let (ob, c) = (self.outbox.clone(), self.counters.clone());
        let send = async {
            let mut tick = tokio::time::interval(keepalive);
            let mut batch = Vec::new();
            loop {
                // Everything waiting (up to BATCH_BYTES) goes in one write.
                {
                    let mut o = lock(&ob.0);
                    let mut bytes = 0;
                    while bytes < BATCH_BYTES {
                        let Some(f) = o.pop() else { break };
                        bytes += f.payload.len() + super::frame::HEADER_LEN;
                        batch.push(f);
                    }
                    c.rtp_dropped.store(o.counters.rtp_dropped, Ordering::Relaxed);
                }
                if batch.is_empty() {
                    tokio::select! {
                        _ = ob.1.notified() => continue,
                        _ = tick.tick() => batch.push(Frame::new(FrameKind::Keepalive, 0, 0, Vec::new())),
                    }
                }
                if let Err(e) = sink.send_frames(&batch).await {
                    let mut o = lock(&ob.0);
                    // SIP goes back to the front in its order; RTP is stale by the next carrier.
                    for f in batch.drain(..).rev() {
                        o.unsend(f);
                    }
                    c.rtp_dropped.store(o.counters.rtp_dropped, Ordering::Relaxed);
                    return e;
                }
                batch.clear();
            }
        };
        let receive = async {
            loop {
                let f = match tokio::time::timeout(keepalive * 3, source.next_frame()).await {
                    Err(_) => return SessionError::Silent(keepalive * 3),
                    Ok(Err(e)) => return e,
                    Ok(Ok(None)) => return SessionError::Closed,
                    Ok(Ok(Some(f))) => f,
                };
                match f.kind {
                    FrameKind::Sip | FrameKind::Rtp => self.deliver(f).await,
                    FrameKind::Keepalive => {
                        let mut o = lock(&self.outbox.0);
                        o.push(Frame::new(FrameKind::KeepaliveEcho, 0, 0, f.payload));
                        drop(o);
                        self.outbox.1.notify_one();
                    }
                    FrameKind::KeepaliveEcho => {}
                    FrameKind::Hello => return SessionError::Handshake(super::hello::HandshakeError::Unexpected(FrameKind::Hello)),
                }
            }
        };
        tokio::select! {
            e = send => e,
            e = receive => e,
        }
    }

    /// The frames waiting for the carrier (SIP and RTP).
    pub fn waiting(&self) -> usize {
        lock(&self.outbox.0).len()
    }

    /// A datagram from the peer: from our socket at its source port, to the local PBX.
    async fn deliver(&self, f: Frame) {
        let Some(s) = self.sockets.get(&f.src_port) else {
            self.counters.unroutable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let counter = if f.kind == FrameKind::Sip { &self.counters.sip_in } else { &self.counters.rtp_in };
        counter.fetch_add(1, Ordering::Relaxed);
        let _ = s.send_to(&f.payload, SocketAddr::new(self.ports.local, f.dst_port)).await;
    }
}

impl Relay {
    /// Stop the socket readers and wait until they are gone (they hold the
    /// sockets: after this and the relay's drop, its ports are free again).
    pub async fn stop(&self) {
        let readers = std::mem::take(&mut *lock(&self.readers));
        for t in &readers {
            t.abort();
        }
        for t in readers {
            let _ = t.await;
        }
    }
}

impl Drop for Relay {
    /// The socket readers stop with the relay (a module unload must leave no task behind).
    fn drop(&mut self) {
        for t in lock(&self.readers).iter() {
            t.abort();
        }
    }
}
