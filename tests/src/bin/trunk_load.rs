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
//! due within [`EARLY`] of then, so packets leave a few at a time at the
//! load's own rate, not in the millisecond bursts a 1 ms timer would make;
//! each carries its actual send time. (Sleeping once per packet made the
//! generator, which stands in for phones on other hosts, cost most of a core
//! at 500 streams: 50,000 sleeps a second. 50 µs early is far inside a real
//! phone's own send jitter.)
//!
//! Receiving: one thread on a level-triggered epoll over all the streams'
//! sockets reads one datagram per ready socket per wake, so no read ends in
//! EAGAIN; the latencies stay in that thread until the end.
//!
//! usage: trunk-load <direct|relay> <streams> <seconds> <a_local> <a_peer> <b_local> <b_peer> <first_port>
//!   direct: stream i goes a_local:p ↔ b_local:p;
//!   relay:  a_local:p → a_peer:p (relay A) … b_peer:p → b_local:p, and back.
//! Prints one line: `streams N sent S received R lost L p50_us X p99_us Y max_us Z`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PACKET: usize = 172;
const PERIOD: Duration = Duration::from_millis(20);
/// A packet due within this of the sender's wake leaves with it.
const EARLY: Duration = Duration::from_micros(50);
/// After the last packet is sent, late ones are still counted for this long.
const DRAIN: Duration = Duration::from_millis(500);

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
    run(relay, streams, Duration::from_secs(secs), (a_local, a_peer, b_local, b_peer), first);
}

fn run(relay: bool, streams: u16, length: Duration, (a_local, a_peer, b_local, b_peer): (IpAddr, IpAddr, IpAddr, IpAddr), first: u16) {
    let epoch = Instant::now();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..streams {
        let port = first + i;
        let bind = |ip: IpAddr| {
            let s = UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
            s.set_nonblocking(true).expect("nonblocking");
            s
        };
        let (sa, sb) = (bind(a_local), bind(b_local));
        // Where each side sends: the other PBX directly, or the address its relay owns.
        let (to_b, to_a) = if relay { (SocketAddr::new(a_peer, port), SocketAddr::new(b_peer, port)) } else { (SocketAddr::new(b_local, port), SocketAddr::new(a_local, port)) };
        senders.push((sa.try_clone().expect("clone"), to_b));
        senders.push((sb.try_clone().expect("clone"), to_a));
        receivers.push(sa);
        receivers.push(sb);
    }
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || receive(receivers, epoch, &done))
    };
    let sent = pace(senders, length, epoch);
    std::thread::sleep(DRAIN);
    done.store(true, Ordering::Relaxed);
    let mut all = receiver.join().expect("receiver");
    let got = all.len() as u64;
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "streams {streams} sent {sent} received {got} lost {} p50_us {} p99_us {} max_us {}",
        sent.saturating_sub(got),
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
}

/// Read every stream's packets until `done`; their one-way latencies in µs.
fn receive(sockets: Vec<UdpSocket>, epoch: Instant, done: &AtomicBool) -> Vec<u32> {
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    // SAFETY: `ep` is a descriptor just opened and owned by nobody else; closed on drop.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for (i, s) in sockets.iter().enumerate() {
        // Level-triggered (no EPOLLET): a socket with more queued is reported again next wake.
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
        // SAFETY: both descriptors are open; `ev` lives across the call.
        let r = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        assert!(r == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut lat = Vec::new();
    let mut buf = [0u8; 2048];
    while !done.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for the count passed; the wait is bounded (100 ms).
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 100) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert!(e.kind() == std::io::ErrorKind::Interrupted, "epoll_wait: {e}");
            continue;
        }
        for ev in &events[..n as usize] {
            let Ok(len) = sockets[ev.u64 as usize].recv(&mut buf) else { continue };
            if len != PACKET {
                continue;
            }
            let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
            lat.push((epoch.elapsed().as_nanos() as u64).saturating_sub(sent).div_ceil(1000) as u32);
        }
    }
    lat
}

/// Send every stream's packets on its own clock for `length`; the number sent.
/// `senders` alternate a→b and b→a of each stream: sender k's phase is k slots
/// of the period's 2×streams.
fn pace(senders: Vec<(UdpSocket, SocketAddr)>, length: Duration, epoch: Instant) -> u64 {
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
        if due > now + EARLY {
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
