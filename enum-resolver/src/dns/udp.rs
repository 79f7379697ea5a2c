//! The UDP front of the DNS server: one thread per socket (SO_REUSEPORT spreads
//! queries across them), a cache of encoded answers keyed by the question, and the
//! full path ([`EnumDns::respond_udp`] on the tokio runtime) for everything else.
//!
//! A cache hit costs a receive, a key read from the packet, a copy with the ID,
//! flags and question patched in, and a send — no allocation, no re-encoding. An
//! answer is replayed only while the resolver holds it as fresh, so revocations
//! and TTLs behave exactly as on the full path.

use std::hash::BuildHasher;
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
        
        
        &self.shards[self.hasher.hash_one(&key) as usize % SHARDS]
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
    let mut io = mmsg::Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match io.receive(socket) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => continue,
            Err(e) => {
                tracing::warn!("DNS UDP receive failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        for i in 0..received {
            let Some(peer) = io.peer(i) else { continue };
            if peer.port() == 0 {
                continue; // cannot be answered
            }
            let key = query_key(io.query(i));
            if let Some(k) = &key
                && let Some(cached) = cache.get(&k.key, now)
                    && let Some(r) = io.queue_reply(i, &cached, k.question_end) {
                        hits.by_rcode[usize::from(r)].inc();
                        continue;
                    }
            // Full path, off this thread.
            let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
            let (socket, dns, cache, raw) = (socket.clone(), dns.clone(), cache.clone(), io.query(i).to_vec());
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
        io.send_queued(socket);
    }
}

/// Batched datagram I/O with recvmmsg/sendmmsg: one system call for up to
/// [`mmsg::BATCH`] queries and one for their replies, as nsd does.
mod mmsg {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::{patch_response, rcode};

    pub const BATCH: usize = 32;
    const QUERY_MAX: usize = 2048;
    const REPLY_MAX: usize = 4096;

    pub struct Batch {
        queries: Vec<[u8; QUERY_MAX]>,
        lens: [usize; BATCH],
        addrs: Vec<libc::sockaddr_storage>,
        addr_lens: [libc::socklen_t; BATCH],
        replies: Vec<[u8; REPLY_MAX]>,
        /// (query index, reply length) of replies waiting to be sent.
        queued: Vec<(usize, usize)>,
    }

    impl Batch {
        pub fn new() -> Self {
            Batch {
                queries: vec![[0u8; QUERY_MAX]; BATCH],
                lens: [0; BATCH],
                // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
                addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
                addr_lens: [0; BATCH],
                replies: vec![[0u8; REPLY_MAX]; BATCH],
                queued: Vec::with_capacity(BATCH),
            }
        }

        /// Wait (up to the socket's read timeout) for at least one datagram and take
        /// every one already there, up to BATCH. Returns how many.
        pub fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
            // SAFETY: iovec/mmsghdr are plain old data; zeroed is valid before filling in.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..BATCH {
                iov[i].iov_base = self.queries[i].as_mut_ptr().cast();
                iov[i].iov_len = QUERY_MAX;
                hdrs[i].msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
                hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdrs[i].msg_hdr.msg_iov = &raw mut iov[i];
                hdrs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every pointer in hdrs points into buffers owned by self or by this
            // frame, alive and unmoved for the duration of the call; lengths match.
            let n = unsafe {
                libc::recvmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = n as usize;
            for i in 0..n {
                self.lens[i] = (hdrs[i].msg_len as usize).min(QUERY_MAX);
                self.addr_lens[i] = hdrs[i].msg_hdr.msg_namelen;
                // A datagram longer than the buffer was cut: not a query we can answer.
                if hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    self.lens[i] = 0;
                }
            }
            Ok(n)
        }

        pub fn query(&self, i: usize) -> &[u8] {
            &self.queries[i][..self.lens[i]]
        }

        pub fn peer(&self, i: usize) -> Option<SocketAddr> {
            if self.lens[i] == 0 {
                return None;
            }
            let storage = &self.addrs[i];
            let len = self.addr_lens[i] as usize;
            match i32::from(storage.ss_family) {
                libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                    // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked).
                    let a: &libc::sockaddr_in = unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
                    let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
                }
                libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                    // SAFETY: as above, for sockaddr_in6.
                    let a: &libc::sockaddr_in6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
                    let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                    Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
                }
                _ => None,
            }
        }

        /// Queue `cached`, patched for query `i`, as its reply. Returns its RCODE.
        pub fn queue_reply(&mut self, i: usize, cached: &[u8], question_end: usize) -> Option<u8> {
            if cached.len() > REPLY_MAX {
                return None;
            }
            let out = &mut self.replies[self.queued.len()][..cached.len()];
            out.copy_from_slice(cached);
            if !patch_response(out, &self.queries[i][..self.lens[i]], question_end) {
                return None;
            }
            let r = rcode(out);
            self.queued.push((i, cached.len()));
            r
        }

        /// Send every queued reply (one system call for the lot).
        pub fn send_queued(&mut self, socket: &UdpSocket) {
            let count = self.queued.len();
            if count == 0 {
                return;
            }
            // SAFETY: as in receive.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (j, &(i, len)) in self.queued.iter().enumerate() {
                iov[j].iov_base = self.replies[j].as_mut_ptr().cast();
                iov[j].iov_len = len;
                hdrs[j].msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
                hdrs[j].msg_hdr.msg_namelen = self.addr_lens[i];
                hdrs[j].msg_hdr.msg_iov = &raw mut iov[j];
                hdrs[j].msg_hdr.msg_iovlen = 1;
            }
            let mut sent = 0;
            while sent < count {
                // SAFETY: pointers into self and this frame, alive for the call.
                let n = unsafe {
                    libc::sendmmsg(socket.as_raw_fd(), hdrs[sent..].as_mut_ptr(), (count - sent) as u32, 0)
                };
                if n <= 0 {
                    break; // UDP: a reply that cannot be sent now is lost, as on any server
                }
                sent += n as usize;
            }
            self.queued.clear();
        }
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
