//! A stand-in for Skywire's faithful-UDP forward (docs/skywire.md §2.2 and §5):
//! it listens on a loopback port, takes the first sender as its one local peer
//! (as a Skywire UDP bridge does) and relays datagrams between that peer and a
//! target, losing and delaying them as told, so a test can show what the trunk
//! does with what a stream carrier cannot express: loss and reordering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng};

/// What the forward does to each datagram, both ways.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Share of datagrams lost, 0.0 to 1.0.
    pub loss: f64,
    /// Each datagram waits `delay` plus up to `jitter` (uniform), so datagrams
    /// closer together than `jitter` arrive reordered.
    pub delay: Duration,
    pub jitter: Duration,
}

/// What crossed the forward.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    pub forwarded: AtomicU64,
    pub lost: AtomicU64,
}

/// A running forward; it stops when dropped.
pub struct UdpForward {
    pub addr: SocketAddr,
    pub counters: Arc<ForwardCounters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpForward {
    /// Listen on 127.0.0.1 (a free port) and relay to `target`; `seed` makes the losses repeatable.
    pub fn start(target: SocketAddr, faults: Faults, seed: u64) -> UdpForward {
        let front = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the forward");
        let back = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the forward's far side");
        let addr = front.local_addr().unwrap();
        for s in [&front, &back] {
            s.set_nonblocking(true).unwrap();
        }
        let counters = Arc::new(ForwardCounters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let c = counters.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let front = Arc::new(tokio::net::UdpSocket::from_std(front).unwrap());
                let back = Arc::new(tokio::net::UdpSocket::from_std(back).unwrap());
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut peer: Option<SocketAddr> = None;
                let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
                let relay = tokio::task::LocalSet::new();
                relay
                    .run_until(async move {
                        let mut stopped = stopped;
                        loop {
                            // One datagram from either side, and where it goes.
                            let (out, data, to) = tokio::select! {
                                _ = &mut stopped => return,
                                r = front.recv_from(&mut a) => {
                                    let Ok((n, from)) = r else { continue };
                                    peer.get_or_insert(from);
                                    if Some(from) != peer { continue }
                                    (back.clone(), a[..n].to_vec(), target)
                                }
                                r = back.recv_from(&mut b) => {
                                    let Ok((n, from)) = r else { continue };
                                    let (Some(p), true) = (peer, from == target) else { continue };
                                    (front.clone(), b[..n].to_vec(), p)
                                }
                            };
                            if rng.random::<f64>() < faults.loss {
                                c.lost.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            c.forwarded.fetch_add(1, Ordering::Relaxed);
                            let wait = faults.delay + faults.jitter.mul_f64(rng.random::<f64>());
                            tokio::task::spawn_local(async move {
                                tokio::time::sleep(wait).await;
                                let _ = out.send_to(&data, to).await;
                            });
                        }
                    })
                    .await
            });
        });
        UdpForward { addr, counters, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for UdpForward {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
