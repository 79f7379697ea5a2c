//! trunk-load: the load generator of bench/trunk-relay.sh. It plays G.711-like
//! RTP streams (172-byte packets, 50 per second each way) between two "PBX"
//! addresses, either straight to each other (direct UDP on loopback, the
//! baseline) or through a pair of trunk relays (each side sends to the peer's
//! address that its relay owns), and reports one-way latency per datagram and
//! loss. Each packet carries its send time; sender and receiver are this
//! process, so one clock measures both ends.
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
    let mut pairs = Vec::new();
    for i in 0..streams {
        let port = first + i;
        let sa = Arc::new(UdpSocket::bind((a_local, port)).await.unwrap_or_else(|e| panic!("bind {a_local}:{port}: {e}")));
        let sb = Arc::new(UdpSocket::bind((b_local, port)).await.unwrap_or_else(|e| panic!("bind {b_local}:{port}: {e}")));
        // Where each side sends: the other PBX directly, or the address its relay owns.
        let (to_b, to_a) = if relay { (SocketAddr::new(a_peer, port), SocketAddr::new(b_peer, port)) } else { (SocketAddr::new(b_local, port), SocketAddr::new(a_local, port)) };
        for s in [sa.clone(), sb.clone()] {
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
        pairs.push((sa, to_b, sb, to_a));
    }
    drop(lat_tx);
    // Each stream sends every 20 ms, the streams spread evenly over the period.
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(PERIOD / u32::from(streams.max(1)).max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut seq = 0u16;
    'send: loop {
        for (sa, to_b, sb, to_a) in &pairs {
            tick.tick().await;
            if start.elapsed() >= length {
                break 'send;
            }
            let mut p = [0u8; PACKET];
            p[0] = 0x80;
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[8..16].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
            let _ = sa.send_to(&p, to_b).await;
            p[8..16].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
            let _ = sb.send_to(&p, to_a).await;
            sent += 2;
        }
        seq = seq.wrapping_add(1);
    }
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
