//! The Skywire trunk's stream carrier against the real stand-in of
//! docs/skywire.md §5: Debian's microsocks plays skysocks-client (CONNECT only,
//! RFC 1929 passcode). Two relay ends on loopback open the carrier through it,
//! run the trunk handshake over it and carry a SIP frame; a wrong passcode and
//! a stopped proxy fail with a reason, within the deadline.

use std::time::{Duration, Instant};

use ness_core::trunk::session::{FrameReader, accept, dial, write_frame};
use ness_core::trunk::{Frame, FrameKind, StreamCarrier, TrunkIdentity, TrunkSecret, VisorKey};
use ness_tests::{Proc, require_tool};

const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
const LIMIT: Duration = Duration::from_secs(3);

fn id(me: &str, peer: &str) -> TrunkIdentity {
    TrunkIdentity { me: VisorKey::parse(me).unwrap(), peer: VisorKey::parse(peer).unwrap(), secret: TrunkSecret::new(&b"a-trunk-secret-of-32-bytes-or-so"[..]).unwrap() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// microsocks on 127.0.0.1:`port`, with a passcode, once it accepts connections.
fn microsocks(port: u16) -> Proc {
    microsocks_as(port, "trunk")
}

/// … with this user name (skysocks takes the passcode as either field; the
/// daemon sends it as both, so its test proxy wants it as both).
fn microsocks_as(port: u16, user: &str) -> Proc {
    let p = Proc::start(require_tool("microsocks", "microsocks"), &["-i", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", "passcode"], &[]);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(5), "microsocks did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_handshake_and_carry_sip_through_a_socks5_proxy() {
    let proxy_port = free_port();
    let mut socks = microsocks(proxy_port);

    // The peer relay, on "its" loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = FrameReader::new(r);
        accept(&mut r, &mut w, id(B, A), LIMIT).await.unwrap();
        let f = r.next().await.unwrap().expect("a frame after the handshake");
        write_frame(&mut w, Frame::new(f.kind, f.dst_port, f.src_port, f.payload.clone())).await.unwrap();
        f
    });

    let carrier = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: format!("127.0.0.1:{peer_port}"),
        auth: Some(("trunk".into(), "passcode".into())),
    };
    let (r, mut w) = carrier.connect(LIMIT).await.unwrap().into_split();
    let mut r = FrameReader::new(r);
    dial(&mut r, &mut w, id(A, B), LIMIT).await.unwrap();
    let invite = Frame::new(FrameKind::Sip, 5060, 5062, &b"INVITE sip:+4930123456@127.77.0.2 SIP/2.0\r\n\r\n"[..]);
    write_frame(&mut w, invite.clone()).await.unwrap();
    let echo = r.next().await.unwrap().unwrap();
    assert_eq!((echo.src_port, echo.dst_port, &echo.payload), (5062, 5060, &invite.payload));
    assert_eq!(peer.await.unwrap(), invite);
    socks.wait_for(&format!("connected to 127.0.0.1:{peer_port}"), Duration::from_secs(5));

    // A wrong passcode is refused by the proxy, with a reason.
    let wrong = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: format!("127.0.0.1:{peer_port}"),
        auth: Some(("trunk".into(), "guess".into())),
    };
    let e = wrong.connect(LIMIT).await.unwrap_err().to_string();
    assert!(e.contains("socks5 via 127.0.0.1"), "{e}");

    // The proxy stops: the carrier fails at once rather than at the deadline.
    socks.kill();
    let t0 = Instant::now();
    let e = carrier.connect(LIMIT).await.unwrap_err().to_string();
    assert!(t0.elapsed() < LIMIT, "{e}");
    assert!(!e.contains("passcode\""), "the passcode must not appear in errors: {e}");
}

/// Two "hosts" on one loopback (docs/skywire.md §5 a): PBX A at 127.77.1.1 with
/// its relay owning the peer's address 127.77.1.2; PBX B at 127.77.2.2 with its
/// relay owning 127.77.2.1. SIP and RTP sent by each PBX to the peer's address
/// arrive at the other PBX from the sender's own ports, through microsocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_and_rtp_cross_two_relays_with_their_ports_intact() {
    use ness_core::trunk::{Relay, RelayPorts};
    use std::sync::atomic::Ordering;
    use tokio::net::UdpSocket;

    let proxy_port = free_port();
    let _socks = microsocks(proxy_port);
    let sip = free_port();
    let rtp = free_port();
    let ports = |local: &str, owned: &str| RelayPorts {
        local: local.parse().unwrap(),
        owned: owned.parse().unwrap(),
        sip: vec![sip],
        rtp: rtp..=rtp + 3,
    };
    let relay_a = Relay::bind(ports("127.77.1.1", "127.77.1.2"), ness_core::trunk::MediaQueue { limit: 500, ..Default::default() }).await.unwrap();
    let relay_b = std::sync::Arc::new(Relay::bind(ports("127.77.2.2", "127.77.2.1"), ness_core::trunk::MediaQueue { limit: 500, ..Default::default() }).await.unwrap());

    // Relay B listens for the carrier; relay A dials it through the proxy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let rb = relay_b.clone();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = FrameReader::new(r);
        accept(&mut r, &mut w, id(B, A), LIMIT).await.unwrap();
        rb.carry(r, ness_core::trunk::session::FrameWriter(w), Duration::from_secs(2)).await
    });
    let carrier = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: format!("127.0.0.1:{peer_port}"),
        auth: Some(("trunk".into(), "passcode".into())),
    };
    let (r, mut w) = carrier.connect(LIMIT).await.unwrap().into_split();
    let mut r = FrameReader::new(r);
    dial(&mut r, &mut w, id(A, B), LIMIT).await.unwrap();
    let relay_a = std::sync::Arc::new(relay_a);
    let ra = relay_a.clone();
    tokio::spawn(async move { ra.carry(r, ness_core::trunk::session::FrameWriter(w), Duration::from_secs(2)).await });

    // SIP from PBX A to its peer's address, and the answer back.
    let pbx_a_sip = UdpSocket::bind(("127.77.1.1", sip)).await.unwrap();
    let pbx_b_sip = UdpSocket::bind(("127.77.2.2", sip)).await.unwrap();
    let invite = b"INVITE sip:+4930123456@127.77.1.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.77.1.1\r\n\r\n";
    pbx_a_sip.send_to(invite, ("127.77.1.2", sip)).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(LIMIT, pbx_b_sip.recv_from(&mut buf)).await.expect("the INVITE did not arrive").unwrap();
    assert_eq!(&buf[..n], invite);
    assert_eq!(from, format!("127.77.2.1:{sip}").parse().unwrap(), "PBX B sees PBX A's address and port");
    pbx_b_sip.send_to(b"SIP/2.0 200 OK\r\n\r\n", from).await.unwrap();
    let (n, from) = tokio::time::timeout(LIMIT, pbx_a_sip.recv_from(&mut buf)).await.expect("the 200 did not come back").unwrap();
    assert_eq!((&buf[..n], from), (&b"SIP/2.0 200 OK\r\n\r\n"[..], format!("127.77.1.2:{sip}").parse().unwrap()));

    // RTP both ways, 100 packets each, 20 ms apart as G.711 would be (sped up).
    let a_rtp = UdpSocket::bind(("127.77.1.1", rtp)).await.unwrap();
    let b_rtp = UdpSocket::bind(("127.77.2.2", rtp + 2)).await.unwrap();
    let receive = |s: std::sync::Arc<UdpSocket>, want_from: std::net::SocketAddr| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let mut got = 0;
            while let Ok(Ok((n, from))) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf)).await {
                assert_eq!((n, from), (172, want_from));
                got += 1;
                if got == 100 {
                    break;
                }
            }
            got
        })
    };
    let (a_rtp, b_rtp) = (std::sync::Arc::new(a_rtp), std::sync::Arc::new(b_rtp));
    let at_b = receive(b_rtp.clone(), format!("127.77.2.1:{rtp}").parse().unwrap());
    let at_a = receive(a_rtp.clone(), format!("127.77.1.2:{}", rtp + 2).parse().unwrap());
    for _ in 0..100 {
        a_rtp.send_to(&[0x80; 172], ("127.77.1.2", rtp + 2)).await.unwrap();
        b_rtp.send_to(&[0x80; 172], ("127.77.2.1", rtp)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!((at_b.await.unwrap(), at_a.await.unwrap()), (100, 100), "RTP lost on a healthy carrier");
    let (ca, cb) = (&relay_a.counters, &relay_b.counters);
    assert_eq!((ca.sip_out.load(Ordering::Relaxed), ca.rtp_out.load(Ordering::Relaxed)), (1, 100));
    assert_eq!((cb.sip_in.load(Ordering::Relaxed), cb.rtp_in.load(Ordering::Relaxed)), (1, 100));
    assert_eq!((ca.rtp_dropped.load(Ordering::Relaxed), cb.unroutable.load(Ordering::Relaxed)), (0, 0));

    // A datagram from anyone but the local PBX is not carried.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(b"OPTIONS", ("127.77.1.2", sip)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ca.sip_out.load(Ordering::Relaxed), 1);
}

/// The SOCKS proxy dies mid-call and comes back: both relays notice, the
/// dialler re-dials with backoff, and the SIP sent during the outage arrives
/// once the carrier is back (SIP is never dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_survives_its_proxy_restarting() {
    use ness_core::trunk::{LinkState, LinkTimings, Relay, RelayPorts, dial_forever, listen_forever};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tokio::net::UdpSocket;

    let proxy_port = free_port();
    let mut socks = microsocks(proxy_port);
    let (sip, rtp) = (free_port(), free_port());
    let ports = |local: &str, owned: &str| RelayPorts { local: local.parse().unwrap(), owned: owned.parse().unwrap(), sip: vec![sip], rtp: rtp..=rtp };
    let relay_a = Arc::new(Relay::bind(ports("127.77.3.1", "127.77.3.2"), ness_core::trunk::MediaQueue { limit: 100, ..Default::default() }).await.unwrap());
    let relay_b = Arc::new(Relay::bind(ports("127.77.4.2", "127.77.4.1"), ness_core::trunk::MediaQueue { limit: 100, ..Default::default() }).await.unwrap());
    let t = LinkTimings { connect: Duration::from_secs(1), keepalive: Duration::from_millis(300), backoff_min: Duration::from_millis(100), backoff_max: Duration::from_millis(800) };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let carrier = StreamCarrier::Socks5 {
        proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        target: listener.local_addr().unwrap().to_string(),
        auth: Some(("trunk".into(), "passcode".into())),
    };
    let (state_a, state_b) = (Arc::new(LinkState::default()), Arc::new(LinkState::default()));
    let b = tokio::spawn(listen_forever(relay_b.clone(), listener, id(B, A), t, state_b.clone(), stop.clone()));
    let a = tokio::spawn(dial_forever(relay_a.clone(), ness_core::trunk::Carrier::Stream(carrier), id(A, B), t, state_a.clone(), stop));
    let until = |what: &'static str, f: Box<dyn Fn() -> bool + Send>| async move {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let sa = state_a.clone();
    until("the trunk never came up", Box::new(move || sa.up.load(Ordering::SeqCst))).await;

    let pbx_a = UdpSocket::bind(("127.77.3.1", sip)).await.unwrap();
    let pbx_b = UdpSocket::bind(("127.77.4.2", sip)).await.unwrap();
    let mut buf = vec![0u8; 2048];
    pbx_a.send_to(b"OPTIONS 1", ("127.77.3.2", sip)).await.unwrap();
    let (n, _) = tokio::time::timeout(LIMIT, pbx_b.recv_from(&mut buf)).await.expect("first SIP").unwrap();
    assert_eq!(&buf[..n], b"OPTIONS 1");

    // The proxy dies: the link goes down on both sides.
    socks.kill();
    let (sa, sb) = (state_a.clone(), state_b.clone());
    until("the dialler did not notice", Box::new(move || !sa.up.load(Ordering::SeqCst))).await;
    until("the listener did not notice", Box::new(move || !sb.up.load(Ordering::SeqCst))).await;
    pbx_a.send_to(b"INVITE during the outage", ("127.77.3.2", sip)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(relay_a.waiting() >= 1, "the SIP sent during the outage is not kept");

    // It comes back on the same port: a new session, and the kept SIP arrives.
    let mut socks = microsocks(proxy_port);
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), pbx_b.recv_from(&mut buf)).await.expect("the kept SIP never arrived").unwrap();
    assert_eq!(&buf[..n], b"INVITE during the outage");
    assert!(state_a.sessions.load(Ordering::Relaxed) >= 2 && state_a.failures.load(Ordering::Relaxed) >= 1);
    assert!(!state_a.last_failure.lock().unwrap().is_empty());
    socks.wait_for("connected to 127.0.0.1:", Duration::from_secs(5));

    stop_tx.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), async { (a.await, b.await) }).await.expect("the links did not stop");
}

/// The UDP carrier through a stand-in faithful-UDP forward that loses 10% of
/// the datagrams each way and delays them by 5–15 ms (so datagrams 2 ms apart
/// arrive reordered): the handshake completes, SIP gets through with SIP's own
/// retransmissions, RTP flows both ways with only the injected losses (nothing
/// waits behind a lost packet), and the trunk stays up on its first session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_carrier_rides_out_loss_and_reordering() {
    use ness_core::trunk::{Carrier, DatagramListener, LinkState, LinkTimings, Relay, RelayPorts, dial_forever, listen_udp_forever};
    use ness_tests::udp_forward::{Faults, UdpForward};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tokio::net::UdpSocket;

    let (sip, rtp) = (free_port(), free_port());
    let ports = |local: &str, owned: &str| RelayPorts { local: local.parse().unwrap(), owned: owned.parse().unwrap(), sip: vec![sip], rtp: rtp..=rtp + 2 };
    let relay_a = Arc::new(Relay::bind(ports("127.77.8.1", "127.77.8.2"), ness_core::trunk::MediaQueue { limit: 1000, ..Default::default() }).await.unwrap());
    let relay_b = Arc::new(Relay::bind(ports("127.77.9.2", "127.77.9.1"), ness_core::trunk::MediaQueue { limit: 1000, ..Default::default() }).await.unwrap());
    let t = LinkTimings { connect: Duration::from_secs(3), keepalive: Duration::from_millis(500), backoff_min: Duration::from_millis(100), backoff_max: Duration::from_millis(800) };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let listener = DatagramListener::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let faults = Faults { loss: 0.10, delay: Duration::from_millis(5), jitter: Duration::from_millis(10) };
    let forward = UdpForward::start(listener.local_addr().unwrap(), faults, 7);
    let (state_a, state_b) = (Arc::new(LinkState::default()), Arc::new(LinkState::default()));
    let b = tokio::spawn(listen_udp_forever(relay_b.clone(), listener, id(B, A), t, state_b.clone(), stop.clone()));
    let a = tokio::spawn(dial_forever(relay_a.clone(), Carrier::Udp { forward: forward.addr }, id(A, B), t, state_a.clone(), stop));
    let t0 = Instant::now();
    while !(state_a.up.load(Ordering::SeqCst) && state_b.up.load(Ordering::SeqCst)) {
        assert!(t0.elapsed() < Duration::from_secs(10), "the trunk never came up: {}", state_a.last_failure.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // SIP, retransmitted as a SIP UA does (Timer A: 500 ms, doubling) until it arrives.
    let pbx_a = UdpSocket::bind(("127.77.8.1", sip)).await.unwrap();
    let pbx_b = UdpSocket::bind(("127.77.9.2", sip)).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let invite = b"INVITE sip:+4930123456@127.77.8.2 SIP/2.0\r\n\r\n";
    let mut timer_a = Duration::from_millis(500);
    let from = loop {
        pbx_a.send_to(invite, ("127.77.8.2", sip)).await.unwrap();
        if let Ok(r) = tokio::time::timeout(timer_a, pbx_b.recv_from(&mut buf)).await {
            let (n, from) = r.unwrap();
            assert_eq!(&buf[..n], invite);
            break from;
        }
        timer_a *= 2;
        assert!(timer_a < Duration::from_secs(8), "the INVITE never crossed the lossy carrier");
    };
    assert_eq!(from, format!("127.77.9.1:{sip}").parse().unwrap());

    // RTP both ways: 400 numbered packets each, 2 ms apart.
    let a_rtp = Arc::new(UdpSocket::bind(("127.77.8.1", rtp)).await.unwrap());
    let b_rtp = Arc::new(UdpSocket::bind(("127.77.9.2", rtp + 2)).await.unwrap());
    let receive = |s: Arc<UdpSocket>| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let (mut got, mut reordered, mut last) = (0u32, 0u32, None::<u16>);
            while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(800), s.recv_from(&mut buf)).await {
                assert_eq!(n, 172);
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                if last.is_some_and(|l| seq < l) {
                    reordered += 1;
                }
                last = Some(seq);
                got += 1;
            }
            (got, reordered)
        })
    };
    let (at_b, at_a) = (receive(b_rtp.clone()), receive(a_rtp.clone()));
    for seq in 0..400u16 {
        let mut p = [0u8; 172];
        p[0] = 0x80;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        a_rtp.send_to(&p, ("127.77.8.2", rtp + 2)).await.unwrap();
        b_rtp.send_to(&p, ("127.77.9.1", rtp)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ((got_b, reordered_b), (got_a, reordered_a)) = (at_b.await.unwrap(), at_a.await.unwrap());
    eprintln!("RTP through 10% loss: {got_b}/400 at B ({reordered_b} out of order), {got_a}/400 at A ({reordered_a} out of order)");
    for got in [got_b, got_a] {
        assert!((300..400).contains(&got), "RTP received {got}/400: the injected loss is about 40, nothing else should go");
    }
    assert!(reordered_a + reordered_b > 0, "the jitter should have reordered some RTP (is the fault injection working?)");
    assert!(forward.counters.lost.load(Ordering::Relaxed) > 40);
    assert_eq!(u64::from(got_b), relay_b.counters.rtp_in.load(Ordering::Relaxed));
    assert_eq!(relay_a.counters.rtp_dropped.load(Ordering::Relaxed), 0, "the relay itself dropped RTP");
    assert_eq!(
        (state_a.sessions.load(Ordering::Relaxed), state_b.sessions.load(Ordering::Relaxed)),
        (1, 1),
        "loss must not break the trunk: {} / {}",
        state_a.last_failure.lock().unwrap(),
        state_b.last_failure.lock().unwrap()
    );

    stop_tx.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), async { (a.await, b.await) }).await.expect("the links did not stop");
}

/// The `ness-trunk` daemon, twice (two "hosts" on one loopback), dialling
/// through microsocks: SIP crosses both ways with its ports intact, a relay
/// with another secret is refused with the reason in the log, and `--check`
/// refuses a secret file others can read.
#[test]
fn two_ness_trunk_daemons_carry_sip_and_refuse_a_wrong_secret() {
    use std::net::UdpSocket;
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let write_private = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    };
    let secret = write_private("secret", "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n");
    let other = write_private("other", "0000000000000000000000000000000000000000000000000000000000000000\n");
    let passcode = write_private("passcode", "passcode\n");
    let proxy_port = free_port();
    let _socks = microsocks_as(proxy_port, "passcode");
    let (sip, rtp, carrier) = (free_port(), free_port(), free_port());
    let conf = |name: &str, me: &str, peer: &str, secret: &std::path::Path, local: &str, owned: &str, role: String| {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "[[trunk]]\nname = \"{name}\"\nme = \"{me}\"\npeer = \"{peer}\"\nsecret_file = \"{}\"\nlocal_address = \"{local}\"\npeer_address = \"{owned}\"\nsip_ports = [{sip}]\nrtp_ports = \"{rtp}-{rtp}\"\nkeepalive_ms = 500\n{role}\n",
                secret.display()
            ),
        )
        .unwrap();
        p
    };
    let b_conf = conf("b", B, A, &secret, "127.77.6.2", "127.77.6.1", format!("listen = \"127.0.0.1:{carrier}\""));
    let dial = format!(
        "dial = {{ carrier = \"socks5\", proxy = \"127.0.0.1:{proxy_port}\", target = \"127.0.0.1:{carrier}\", passcode_file = \"{}\" }}",
        passcode.display()
    );
    let a_conf = conf("a", A, B, &secret, "127.77.5.1", "127.77.5.2", dial.clone());
    let trunk = ness_tests::bin("ness-trunk");
    let mut b = Proc::start(trunk.clone(), &["--config", b_conf.to_str().unwrap()], &[("RUST_LOG", "info")]);
    b.wait_for("relaying", Duration::from_secs(10));
    let mut a = Proc::start(trunk.clone(), &["--config", a_conf.to_str().unwrap()], &[("RUST_LOG", "info")]);
    a.wait_for("trunk: up to visor", Duration::from_secs(10));

    let pbx_a = UdpSocket::bind(("127.77.5.1", sip)).unwrap();
    let pbx_b = UdpSocket::bind(("127.77.6.2", sip)).unwrap();
    for s in [&pbx_a, &pbx_b] {
        s.set_read_timeout(Some(LIMIT)).unwrap();
    }
    let mut buf = [0u8; 2048];
    pbx_a.send_to(b"INVITE sip:+4930123456@127.77.5.2 SIP/2.0\r\n\r\n", ("127.77.5.2", sip)).unwrap();
    let (n, from) = pbx_b.recv_from(&mut buf).expect("the INVITE did not cross");
    assert_eq!((&buf[..n], from.to_string()), (&b"INVITE sip:+4930123456@127.77.5.2 SIP/2.0\r\n\r\n"[..], format!("127.77.6.1:{sip}")));
    pbx_b.send_to(b"SIP/2.0 200 OK\r\n\r\n", from).unwrap();
    let (n, from) = pbx_a.recv_from(&mut buf).expect("the 200 did not come back");
    assert_eq!((&buf[..n], from.to_string()), (&b"SIP/2.0 200 OK\r\n\r\n"[..], format!("127.77.5.2:{sip}")));
    a.kill();

    // A relay with another secret: the listener refuses it and says why.
    let c_conf = conf("c", A, B, &other, "127.77.7.1", "127.77.7.2", dial);
    let mut c = Proc::start(trunk.clone(), &["--config", c_conf.to_str().unwrap()], &[("RUST_LOG", "info")]);
    b.wait_for("does not know this trunk's secret", Duration::from_secs(10));
    c.kill();
    b.kill();

    // --check refuses a secret others can read, naming the fix.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ness_tests::run(&trunk, &["--config", b_conf.to_str().unwrap(), "--check"], &[], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&out.stderr));
}
