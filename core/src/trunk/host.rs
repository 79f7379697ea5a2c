//! Running a trunk file's trunks, the same way in every host: the `ness-trunk`
//! daemon, Kamailio's TRUNK process and Asterisk's module thread each call
//! [`start`] on their tokio runtime, keep the [`RunningTrunk`]s, show their
//! [`TrunkStatus`] (`privateness.trunks`, `privateness show trunks`, the
//! daemon's status log) and stop them by sending `true` on the stop channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::config::{Role, Trunk};
use super::datagram::DatagramListener;
use super::link::{LinkState, dial_forever, listen_forever, listen_udp_forever};
use super::relay::Relay;

/// One trunk at work.
pub struct RunningTrunk {
    pub trunk: Trunk,
    pub relay: Arc<Relay>,
    pub state: Arc<LinkState>,
    pub task: tokio::task::JoinHandle<()>,
}

/// What a host shows of a trunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkStatus {
    pub name: String,
    pub peer: String,
    /// How this end meets the peer: `listen 127.0.0.1:7100`, `socks5 via … to …`, …
    pub carrier: String,
    /// This PBX's address and the peer's (owned by the relay).
    pub local: String,
    pub owned: String,
    pub up: bool,
    pub sessions: u64,
    pub failures: u64,
    pub last_failure: String,
    pub sip_out: u64,
    pub sip_in: u64,
    pub rtp_out: u64,
    pub rtp_in: u64,
    pub rtp_dropped: u64,
    pub unroutable: u64,
    /// Frames waiting for the carrier now.
    pub waiting: u64,
}

impl RunningTrunk {
    pub fn status(&self) -> TrunkStatus {
        let (c, s) = (&self.relay.counters, &self.state);
        TrunkStatus {
            name: self.trunk.name.clone(),
            peer: self.trunk.id.peer.to_string(),
            carrier: match &self.trunk.role {
                Role::Listen(a) => format!("listen {a}"),
                Role::ListenUdp(a) => format!("listen udp {a}"),
                Role::Dial(carrier) => format!("{carrier:?}"),
            },
            local: self.trunk.ports.local.to_string(),
            owned: self.trunk.ports.owned.to_string(),
            up: s.up.load(Ordering::SeqCst),
            sessions: s.sessions.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            last_failure: s.last_failure.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            sip_out: c.sip_out.load(Ordering::Relaxed),
            sip_in: c.sip_in.load(Ordering::Relaxed),
            rtp_out: c.rtp_out.load(Ordering::Relaxed),
            rtp_in: c.rtp_in.load(Ordering::Relaxed),
            rtp_dropped: c.rtp_dropped.load(Ordering::Relaxed),
            unroutable: c.unroutable.load(Ordering::Relaxed),
            waiting: self.relay.waiting() as u64,
        }
    }
}

impl std::fmt::Display for TrunkStatus {
    /// One line for logs and consoles.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trunk {}: {} sessions {} failures {}; SIP out {} in {}; RTP out {} in {} dropped {}; unroutable {}",
            self.name,
            if self.up { "up" } else { "down" },
            self.sessions,
            self.failures,
            self.sip_out,
            self.sip_in,
            self.rtp_out,
            self.rtp_in,
            self.rtp_dropped,
            self.unroutable
        )
    }
}

/// Bind every trunk's relay and carrier listener and start keeping its link
/// up, on the current tokio runtime. A trunk that cannot bind stops the start
/// (the ones already started stop with the `stop` channel or when dropped).
pub async fn start(trunks: Vec<Trunk>, stop: watch::Receiver<bool>) -> Result<Vec<RunningTrunk>, String> {
    let mut running = Vec::new();
    for t in trunks {
        let relay = Arc::new(Relay::bind(t.ports.clone(), t.media).await.map_err(|e| format!("trunk {}: {e}", t.name))?);
        let state = Arc::new(LinkState::default());
        tracing::info!("trunk {}: relaying {}:{:?} and RTP {:?} for the PBX at {}, {:?}", t.name, t.ports.owned, t.ports.sip, t.ports.rtp, t.ports.local, t.role);
        let (r, s, id, timings, stop) = (relay.clone(), state.clone(), t.id.clone(), t.timings, stop.clone());
        let task = match t.role.clone() {
            Role::Listen(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("trunk {}: cannot listen on {addr}: {e}", t.name))?;
                tokio::spawn(listen_forever(r, l, id, timings, s, stop))
            }
            Role::ListenUdp(addr) => {
                let l = tokio::net::UdpSocket::bind(addr).await.map_err(|e| format!("trunk {}: cannot listen on udp {addr}: {e}", t.name))?;
                tokio::spawn(listen_udp_forever(r, DatagramListener::new(l), id, timings, s, stop))
            }
            Role::Dial(carrier) => tokio::spawn(dial_forever(r, carrier, id, timings, s, stop)),
        };
        running.push(RunningTrunk { trunk: t, relay, state, task });
    }
    Ok(running)
}

impl RunningTrunk {
    /// Stop the link and the relay and wait until their tasks are gone, so the
    /// ports are free when this returns (a reload that restarts trunks binds
    /// them again at once).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.relay.stop().await;
    }
}

impl Drop for RunningTrunk {
    /// A host that drops its trunks (a module unload) leaves no task behind.
    fn drop(&mut self) {
        self.task.abort();
    }
}
