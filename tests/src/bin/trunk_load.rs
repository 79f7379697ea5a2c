//! trunk-load: the load generator of bench/trunk-relay.sh. It plays G.711-like
//! RTP streams (172-byte packets, 50 per second each way) between two "PBX"
//! addresses, either straight to each other (direct UDP on loopback, the
//! baseline) or through a pair of trunk relays (each side sends to the peer's
//! address that its relay owns), and reports one-way latency per datagram and
//! loss. Each packet carries its send time; sender and receiver are this
//! process, so one clock measures both ends.
//!
//! Pacing: each stream sends on its own 20 ms clock, the streams' phases
//! spread evenly over the period (and each stream's two directions half a
//! slot apart), as independent phones would. A sender thread sleeps until
//! the next packet is due (timer slack set to 1 µs) and sends every packet
//! then due, so packets leave a few at a time at the load's own rate, not in
//! the millisecond bursts a 1 ms timer would make; each carries its actual
//! send time.
//!
//! usage: trunk-load <direct|relay> <streams> <seconds> <a_local> <a_peer> <b_local> <b_peer> <first_port>
//!   direct: stream i goes a_local:p ↔ b_local:p;
//!   relay:  a_local:p → a_peer:p (relay A) … b_peer:p → b_local:p, and back.
//! Prints one line: `streams N sent S received R lost L p50_us X p99_us Y max_us Z`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

const PACKET: usize = 172;
const PERIOD: Duration = Duration::from_millis(20);

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 8 {
        eprintln!("usage: trunk-load <direct|relay> <streams> <seconds> <a_local> <a_peer> <b_local> <b_peer> <first_port>");
        std::process::exit(2);
    }
    let relay = match a[0].as_str() {
        "direct" => false,
        "relay" => true,
        other => {
            eprintln!("trunk-load: mode {other:?} is not direct or relay");
            std::process::exit(2);
        }
    };
    let parse_ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s:?}: {e}"));
    let streams: u16 = a[1].parse().expect("streams");
    let secs: u64 = a[2].parse().expect("seconds");
    let (a_local, a_peer, b_local, b_peer) = (parse_ip(&a[3]), parse_ip(&a[4]), parse_ip(&a[5]), parse_ip(&a[6]));
    let first: u16 = a[7].parse().expect("first port");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(run(relay, streams, Duration::from_secs(secs), (a_local, a_peer, b_local, b_peer), first));
}

async fn run(relay: bool, streams: u16, length: Duration, (a_local, a_peer, b_local, b_peer): (IpAddr, IpAddr, IpAddr, IpAddr), first: u16) {
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u32>>();
    let mut senders = Vec::new();
    for i in 0..streams {
        let port = first + i;
        let bind = |ip: IpAddr| {
            let s = std::net::UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
            s.set_nonblocking(true).expect("nonblocking");
            let sender = s.try_clone().expect("clone");
            (UdpSocket::from_std(s).expect("tokio socket"), sender)
        };
        let (sa, send_a) = bind(a_local);
        let (sb, send_b) = bind(b_local);
        // Where each side sends: the other PBX directly, or the address its relay owns.
        let (to_b, to_a) = if relay { (SocketAddr::new(a_peer, port), SocketAddr::new(b_peer, port)) } else { (SocketAddr::new(b_local, port), SocketAddr::new(a_local, port)) };
        for s in [sa, sb] {
            let (received, lat_tx) = (received.clone(), lat_tx.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let mut lat = Vec::with_capacity(64);
                while let Ok(n) = s.recv(&mut buf).await {
                    if n != PACKET {
                        continue;
                    }
                    let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                    lat.push((epoch.elapsed().as_nanos() as u64).saturating_sub(sent).div_ceil(1000) as u32);
                    received.fetch_add(1, Ordering::Relaxed);
                    if lat.len() == 16 {
                        let _ = lat_tx.send(std::mem::replace(&mut lat, Vec::with_capacity(16)));
                    }
                }
            });
        }
        senders.push((send_a, to_b));
        senders.push((send_b, to_a));
    }
    drop(lat_tx);
    let sent = tokio::task::spawn_blocking(move || pace(senders, length, epoch)).await.expect("sender");
    // Late packets still count; then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all: Vec<u32> = Vec::new();
    while let Ok(batch) = lat_rx.try_recv() {
        all.extend(batch);
    }
    let got = received.load(Ordering::Relaxed);
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "streams {streams} sent {sent} received {got} lost {} p50_us {} p99_us {} max_us {}",
        sent.saturating_sub(got),
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
    std::process::exit(0);
}

/// Send every stream's packets on its own clock for `length`; the number sent.
/// `senders` alternate a→b and b→a of each stream: sender k's phase is k slots
/// of the period's 2×streams.
fn pace(senders: Vec<(std::net::UdpSocket, SocketAddr)>, length: Duration, epoch: Instant) -> u64 {
    // SAFETY: prctl with an integer argument, for this thread only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
    let slot = PERIOD / senders.len().max(1) as u32;
    let start = Instant::now();
    let (mut sent, mut next, mut round) = (0u64, 0usize, 0u32);
    let mut p = [0u8; PACKET];
    p[0] = 0x80;
    loop {
        // Packet `next` of `round` is due at start + round × period + next × slot.
        let due = start + PERIOD * round + slot * next as u32;
        if due >= start + length {
            return sent;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let (s, to) = &senders[next];
        p[2..4].copy_from_slice(&(round as u16).to_be_bytes());
        p[8..16].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
        let _ = s.send_to(&p, to);
        sent += 1;
        next += 1;
        if next == senders.len() {
            next = 0;
            round += 1;
        }
    }
}
