//! The UDP front of the DNS server: one thread per socket (SO_REUSEPORT spreads
//! queries across them), a cache of encoded answers keyed by the question, and the
//! full path ([`EnumDns::respond_udp`] on the tokio runtime) for everything else.
//!
//! A cache hit costs a receive, a key read from the packet, a copy with the ID,
//! flags and question patched in, and a send — no allocation, no re-encoding. An
//! answer is replayed only while the resolver holds it as fresh, so revocations
//! and TTLs behave exactly as on the full path.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lru::LruCache;
use ness_core::enumer::NameSource;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::EnumDns;
use super::query_key::{patch_response, query_key, rcode};
use crate::metrics::DnsLabels;

const SHARDS: usize = 16;
/// Queries on the full path at once; beyond this, queries are dropped (the client
/// retries), so a flood of unknown names cannot pile up tasks.
const MAX_IN_FLIGHT: usize = 4096;

/// Encoded answers by question.
pub struct AnswerWireCache {
    shards: Vec<Mutex<LruCache<Vec<u8>, (Bytes, Instant)>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl AnswerWireCache {
    pub fn new(capacity: usize) -> Self {
        let per = NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).expect("non-zero");
        AnswerWireCache { shards: (0..SHARDS).map(|_| Mutex::new(LruCache::new(per))).collect(), hasher: Default::default() }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<LruCache<Vec<u8>, (Bytes, Instant)>> {
        let mut h = self.hasher.build_hasher();
        key.hash(&mut h);
        &self.shards[h.finish() as usize % SHARDS]
    }

    pub fn get(&self, key: &[u8], now: Instant) -> Option<Bytes> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(key) {
            Some((bytes, until)) if now < *until => Some(bytes.clone()),
            Some(_) => {
                shard.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: Vec<u8>, bytes: Bytes, until: Instant) {
        self.shard(&key).lock().unwrap_or_else(|p| p.into_inner()).put(key, (bytes, until));
    }
}

/// Per-rcode counters of replayed answers (created once: no label lookup per query).
struct HitCounters {
    by_rcode: [Counter; 16],
}

impl HitCounters {
    fn new<S: NameSource + 'static>(dns: &EnumDns<S>) -> Self {
        let names = |r: u8| match r {
            0 => "NOERROR",
            3 => "NXDOMAIN",
            5 => "REFUSED",
            _ => "OTHER",
        };
        let by_rcode = std::array::from_fn(|r| {
            dns.metrics().dns_queries.get_or_create(&DnsLabels { proto: "udp", rcode: names(r as u8) }).clone()
        });
        HitCounters { by_rcode }
    }
}

/// Serve UDP on `sockets` until `stop` is set. Returns the worker threads.
pub fn serve<S: NameSource + 'static>(
    sockets: Vec<UdpSocket>,
    dns: Arc<EnumDns<S>>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let cache = Arc::new(AnswerWireCache::new(100_000));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let hits = Arc::new(HitCounters::new(&dns));
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let socket = Arc::new(socket);
        let (dns, cache, in_flight, hits, runtime, stop) =
            (dns.clone(), cache.clone(), in_flight.clone(), hits.clone(), runtime.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || worker(&socket, &dns, &cache, &in_flight, &hits, &runtime, &stop))?,
        );
    }
    Ok(threads)
}

fn worker<S: NameSource + 'static>(
    socket: &Arc<UdpSocket>,
    dns: &Arc<EnumDns<S>>,
    cache: &Arc<AnswerWireCache>,
    in_flight: &Arc<Semaphore>,
    hits: &HitCounters,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => continue,
            Err(e) => {
                tracing::warn!("DNS UDP receive failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if peer.port() == 0 {
            continue; // cannot be answered
        }
        let query = &buf[..len];
        let key = query_key(query);
        if let Some(k) = &key {
            if let Some(cached) = cache.get(&k.key, Instant::now()) {
                out.clear();
                out.extend_from_slice(&cached);
                if patch_response(&mut out, query, k.question_end) {
                    let _ = socket.send_to(&out, peer);
                    if let Some(r) = rcode(&out) {
                        hits.by_rcode[usize::from(r)].inc();
                    }
                    continue;
                }
            }
        }
        // Full path, off this thread.
        let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
        let (socket, dns, cache, raw) = (socket.clone(), dns.clone(), cache.clone(), query.to_vec());
        runtime.spawn(async move {
            let _permit = permit;
            if let Some((bytes, same_until)) = dns.respond_udp(&raw, peer).await {
                let _ = socket.send_to(&bytes, peer);
                if let (Some(k), Some(until)) = (key, same_until) {
                    cache.insert(k.key, Bytes::from(bytes), until);
                }
            }
        });
    }
}

/// Bind `count` UDP sockets on one address with SO_REUSEPORT.
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    (0..count.max(1))
        .map(|_| {
            let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_port(true)?;
            let _ = s.set_recv_buffer_size(4 << 20);
            let _ = s.set_send_buffer_size(4 << 20);
            s.bind(&addr.into())?;
            Ok(s.into())
        })
        .collect()
}
