//! A real call across a Skywire trunk (issue 7, docs/skywire.md §5): two
//! "hosts" as network namespaces, each with a Kamailio running the shipped
//! dialplan/kamailio/skywire-trunk.cfg and a trunk relay (the `ness-trunk`
//! daemon, or privateness.so's TRUNK process inside that Kamailio), both using
//! the same two trunk addresses as two real hosts would. The only path between the
//! namespaces is a Unix socket: socat carries host A's SOCKS5 connections to
//! Debian's microsocks on host B, which stands in for skysocks (with a
//! passcode). SIPp calls from host A to a SIPp phone on host B that echoes RTP;
//! mid-call the proxy is killed and restarted. The relays' counters at each end
//! count the RTP (what the outage held back is dropped, not played late), and
//! the call must end with its BYE answered.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ness_tests::netns::NetNs;
use ness_tests::{Proc, bin, require_tool};

const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";
/// RTP packets in SIPp's g711a.pcap (7 s of G.711 A-law).
const PCAP_PACKETS: u64 = 236;
/// RTP a dying carrier may swallow unseen: what sat in its buffers (at 50
/// packets/s each way, a few; one was seen in CI).
const IN_FLIGHT: u64 = 5;

/// One `ness-trunk` status line's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    sessions: u64,
    sip_out: u64,
    sip_in: u64,
    rtp_out: u64,
    rtp_in: u64,
    rtp_dropped: u64,
}

/// Where the relays run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hosting {
    /// The `ness-trunk` daemon next to each Kamailio.
    Daemon,
    /// Inside each Kamailio (privateness.so, `trunk_config`), read with `kamcmd privateness.trunks`.
    Kamailio,
}

/// `privateness.trunks` of one Kamailio.
fn kamailio_counters(ctl: &str) -> Counters {
    let out = ness_tests::run(&require_tool("kamcmd", "kamailio"), &["-s", ctl, "privateness.trunks"], &[], Duration::from_secs(10));
    let f = ness_tests::fields(&String::from_utf8_lossy(&out.stdout));
    let n = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Counters { sessions: n("sessions"), sip_out: n("sip_out"), sip_in: n("sip_in"), rtp_out: n("rtp_out"), rtp_in: n("rtp_in"), rtp_dropped: n("rtp_dropped") }
}

/// The newest status line of a `ness-trunk` (logged every second).
fn counters(trunk: &mut Proc) -> Counters {
    let Some(line) = trunk.drain().iter().rev().find(|l| l.contains(" sessions ") && l.contains("RTP out")).cloned() else {
        return Counters::default();
    };
    let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == ';').filter(|w| !w.is_empty()).collect();
    let after = |what: &[&str]| -> u64 {
        let i = words.windows(what.len()).position(|w| w == what).unwrap_or_else(|| panic!("{what:?} not in {line:?}"));
        words[i + what.len()].parse().unwrap_or_else(|_| panic!("a number after {what:?} in {line:?}"))
    };
    Counters {
        sessions: after(&["sessions"]),
        sip_out: after(&["SIP", "out"]),
        sip_in: after(&["SIP", "out", &after(&["SIP", "out"]).to_string(), "in"]),
        rtp_out: after(&["RTP", "out"]),
        rtp_in: after(&["RTP", "out", &after(&["RTP", "out"]).to_string(), "in"]),
        rtp_dropped: after(&["dropped"]),
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what} (waited {limit:?})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_sipp_call_crosses_two_kamailios_over_the_trunk_and_survives_a_proxy_restart() {
    call_across_the_trunk(Hosting::Daemon);
}

/// The same call with the relays inside the two Kamailios (privateness.so's
/// TRUNK process), counted with `kamcmd privateness.trunks`.
#[test]
fn kamailio_hosts_the_trunk_relay_itself() {
    call_across_the_trunk(Hosting::Kamailio);
}

fn call_across_the_trunk(hosting: Hosting) {
    for (tool, package) in [("kamailio", "kamailio"), ("sipp", "sip-tester"), ("microsocks", "microsocks"), ("socat", "socat")] {
        require_tool(tool, package);
    }
    assert!(std::path::Path::new(PCAP).exists(), "{PCAP} is missing (Debian package sip-tester)");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let private = |name: &str, text: &str| {
        std::fs::write(path(name), text).unwrap();
        std::fs::set_permissions(path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    private("secret", "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n");
    private("passcode", "passcode\n");
    let (host_a, host_b) = (NetNs::create("a"), NetNs::create("b"));

    // The carrier: host A's 127.0.0.1:1080 → a Unix socket → host B's microsocks.
    let socks = || host_b.start(require_tool("microsocks", "microsocks"), &["-i", "127.0.0.1", "-p", "1081", "-u", "passcode", "-P", "passcode"], &[]);
    let mut proxy = socks();
    let _bridge_b = host_b.start(require_tool("socat", "socat"), &[&format!("UNIX-LISTEN:{},fork", path("carrier.sock")), "TCP:127.0.0.1:1081"], &[]);
    let _bridge_a = host_a.start(require_tool("socat", "socat"), &["TCP-LISTEN:1080,bind=127.0.0.1,fork,reuseaddr", &format!("UNIX-CONNECT:{}", path("carrier.sock"))], &[]);

    // The relays: the same addresses on both hosts, mirrored.
    let trunk_conf = |name: &str, me: &str, peer: &str, local: &str, owned: &str, role: String| {
        let text = format!(
            "[[trunk]]\nname = \"{name}\"\nme = \"{me}\"\npeer = \"{peer}\"\nsecret_file = \"{}\"\nlocal_address = \"{local}\"\npeer_address = \"{owned}\"\nsip_ports = [5060]\nrtp_ports = \"6000-6009\"\nkeepalive_ms = 500\n{role}\n",
            path("secret")
        );
        std::fs::write(path(&format!("{name}.toml")), text).unwrap();
        path(&format!("{name}.toml"))
    };
    let conf_b = trunk_conf("to-a", B, A, "127.77.0.2", "127.77.0.1", "listen = \"127.0.0.1:7100\"".into());
    let conf_a = trunk_conf(
        "to-b",
        A,
        B,
        "127.77.0.1",
        "127.77.0.2",
        format!("dial = {{ carrier = \"socks5\", proxy = \"127.0.0.1:1080\", target = \"127.0.0.1:7100\", passcode_file = \"{}\" }}", path("passcode")),
    );
    let env = [("RUST_LOG", "info")];
    let mut daemons = None;
    if hosting == Hosting::Daemon {
        let mut trunk_b = host_b.start(bin("ness-trunk"), &["--config", &conf_b, "--status-every", "1"], &env);
        trunk_b.wait_for("relaying", Duration::from_secs(10));
        let mut trunk_a = host_a.start(bin("ness-trunk"), &["--config", &conf_a, "--status-every", "1"], &env);
        trunk_a.wait_for("trunk: up to visor", Duration::from_secs(15));
        daemons = Some((trunk_a, trunk_b));
    }
    // The PBXes: the shipped trunk cfg on each host.
    let cfg = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dialplan/kamailio/skywire-trunk.cfg");
    let ctl = |name: &str| format!("unix:{}", path(&format!("ctl-{name}")));
    let kamailio = |ns: &NetNs, name: &str, me: &str, peer: &str, phones: &str, trunk_conf: &str| {
        let run_dir = path(&format!("run-{name}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut defines = vec![format!("LISTEN=udp:{me}:5060"), format!("PEER_ADDRESS=\"{peer}\""), format!("LOCAL_PHONES=\"{phones}\""), "CHILDREN=2".into()];
        if hosting == Hosting::Kamailio {
            defines.extend([
                format!("TRUNK_CONFIG=\"{trunk_conf}\""),
                format!("PRIVATENESS_SO=\"{}\"", bin("libprivateness.so").display()),
                format!("CTL_SOCKET=\"{}\"", ctl(name)),
                // The module's node settings (unused by a trunk-only cfg).
                "RPC_USER=\"trunk\"".into(),
                "RPC_PASSWORD=\"unused\"".into(),
            ]);
        }
        let mut args = vec!["-f".to_owned(), cfg.display().to_string(), "-DD".into(), "-E".into(), "-e".into(), "-Y".into(), run_dir.clone()];
        args.extend(["-P".into(), format!("{run_dir}/kamailio.pid"), "-m".into(), "64".into(), "-M".into(), "8".into()]);
        for d in defines {
            args.extend(["-A".into(), d]);
        }
        ns.start(require_tool("kamailio", "kamailio"), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let mut pbx_b = kamailio(&host_b, "b", "127.77.0.2", "127.77.0.1", "sip:127.77.0.2:5080", &conf_b);
    let mut pbx_a = kamailio(&host_a, "a", "127.77.0.1", "127.77.0.2", "sip:127.77.0.1:5070", &conf_a);
    if hosting == Hosting::Kamailio {
        pbx_a.wait_for("trunk: up to visor", Duration::from_secs(20));
    }
    // Each relay's counters: the daemon's status log, or privateness.trunks.
    fn relay_counters(daemons: &mut Option<(Proc, Proc)>, ctl: &str, side: char, pbx: &mut Proc) -> Counters {
        pbx.drain();
        match (daemons, side) {
            (Some((a, _)), 'a') => counters(a),
            (Some((_, b)), _) => counters(b),
            (None, _) => kamailio_counters(ctl),
        }
    }
    let (ctl_a, ctl_b) = (ctl("a"), ctl("b"));
    macro_rules! read {
        ('a', $pbx:expr) => { relay_counters(&mut daemons, &ctl_a, 'a', $pbx) };
        ('b', $pbx:expr) => { relay_counters(&mut daemons, &ctl_b, 'b', $pbx) };
    }

    // The phones: SIPp on each host, RTP on the trunk's range.
    let scenario = |name: &str| {
        let text = std::fs::read_to_string(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sipp").join(name)).unwrap();
        std::fs::write(path(name), text.replace("PCAP", PCAP).replace("PAUSE_MS", "8500")).unwrap();
        path(name)
    };
    let sipp = require_tool("sipp", "sip-tester");
    let mut phone_b = host_b.start(
        sipp.clone(),
        &["-sf", &scenario("trunk-uas.xml"), "-i", "127.77.0.2", "-p", "5080", "-mi", "127.77.0.2", "-mp", "6000", "-rtp_echo", "-m", "1", "-nostdin", "-trace_err", "-error_file", &path("uas.err")],
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut phone_a = host_a.start(
        sipp,
        &[
            "-sf", &scenario("trunk-uac.xml"), "-i", "127.77.0.1", "-p", "5070", "-mi", "127.77.0.1", "-mp", "6000", "-s", "4930123456", "127.77.0.1:5060",
            "-m", "1", "-nostdin", "-trace_err", "-error_file", &path("uac.err"),
        ],
        &[],
    );

    // The call is up once RTP crosses; then the proxy dies and comes back.
    wait_until("no RTP reached host B", Duration::from_secs(15), || read!('b', &mut pbx_b).rtp_in > 0);
    let before = read!('b', &mut pbx_b);
    proxy.kill();
    match &mut daemons {
        Some((trunk_a, _)) => trunk_a.wait_for("trunk: the carrier ended", Duration::from_secs(5)),
        None => pbx_a.wait_for("trunk: the carrier ended", Duration::from_secs(5)),
    };
    std::thread::sleep(Duration::from_millis(500));
    proxy = socks();
    wait_until("the trunk did not come back after the proxy restarted", Duration::from_secs(10), || read!('a', &mut pbx_a).sessions >= 2);
    // After the reconnect (the daemons log every second): RTP must flow again.
    std::thread::sleep(Duration::from_millis(1100));
    let reconnected = read!('b', &mut pbx_b);

    let status_a = phone_a.wait_exit(Duration::from_secs(40));
    let status_b = phone_b.wait_exit(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let (end_a, end_b) = (read!('a', &mut pbx_a), read!('b', &mut pbx_b));
    let report = format!(
        "{hosting:?}: host A relay {end_a:?}\nhost B relay {end_b:?}\nB before the outage {before:?}, after it {reconnected:?}\nphone A:\n{}\n{}\nphone B:\n{}\n{}\nKamailio A:\n{}\nKamailio B:\n{}",
        phone_a.drain().join("\n"),
        std::fs::read_to_string(path("uac.err")).unwrap_or_default(),
        phone_b.drain().join("\n"),
        std::fs::read_to_string(path("uas.err")).unwrap_or_default(),
        pbx_a.log.join("\n"),
        pbx_b.log.join("\n"),
    );
    eprintln!("{}", report.lines().take(3).collect::<Vec<_>>().join("\n"));
    assert!(status_a.is_some_and(|s| s.success()), "the calling phone did not complete its call (BYE answered):\n{report}");
    assert!(status_b.is_some_and(|s| s.success()), "the called phone did not see the call through:\n{report}");
    // SIP: INVITE, ACK, BYE out of A; the answers back in.
    assert!(end_a.sip_out >= 3 && end_a.sip_in >= 2 && end_b.sip_in >= 3, "{report}");
    // RTP, counted at each end: A sent the whole pcap; B got most of it, all
    // but what the outage cost: RTP that waited past its age limit (200 ms)
    // was dropped, not played late; B echoed what it got, which A received.
    assert_eq!(end_a.rtp_out, PCAP_PACKETS, "host A's relay did not see every RTP packet the phone sent\n{report}");
    assert!(end_b.rtp_in >= PCAP_PACKETS / 2 && end_b.rtp_in < PCAP_PACKETS, "{report}");
    // Every RTP packet is delivered or counted as dropped, except the few the
    // carrier had already taken when the proxy died (in the kernel's and the
    // proxy's buffers: written, never delivered, and no relay can know).
    let accounted = end_b.rtp_in + end_a.rtp_dropped;
    assert!(accounted <= PCAP_PACKETS && accounted + IN_FLIGHT >= PCAP_PACKETS, "{accounted} of {PCAP_PACKETS} RTP packets accounted for\n{report}");
    assert!(end_b.rtp_out >= end_b.rtp_in * 9 / 10, "the echo did not go back\n{report}");
    assert!(end_a.rtp_in >= end_b.rtp_out * 8 / 10, "the echo did not reach host A\n{report}");
    assert!(end_b.rtp_in >= reconnected.rtp_in + 25, "RTP did not flow again after the proxy restarted\n{report}");
    assert!(before.rtp_in > 0 && end_a.sessions >= 2, "{report}");
    drop(proxy);
}
