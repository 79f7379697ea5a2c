//! The SMS pipeline end to end, with the real parts: Debian's gammu-smsd (dummy
//! phone, no modem) running `ness-gammu-hook receive` as its RunOnReceive with the
//! files, sql and null backends; the forwarder delivering through microsocks to
//! `ness inbox serve`; `ness inbox read` showing the exact texts. Then the failure
//! paths: the inbox down for a while, the forwarder SIGKILLed mid-send, hostile
//! sender names, and the modem reader against a fake modem on a socat PTY pair.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ness_gammu_hook::backup::{BackupPart, write_incoming};
use ness_tests::{Proc, bin, require_tool, run};

const GSM_TEXT: &str = "Hello from gammu: @£$¥ èéù [ok] {fine} ~€ 100%";
const UCS2_TEXT: &str = "Привет 👋 äöü € 漢字";

fn long_text() -> String {
    (0..60).map(|i| format!("part{i:02} ")).collect::<String>() + "end."
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ness(args: &[&str]) -> String {
    let out = run(&bin("ness"), args, &[], Duration::from_secs(30));
    assert!(out.status.success(), "ness {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hook(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&bin("ness-gammu-hook"), &all, &[], Duration::from_secs(30));
    assert!(out.status.success(), "ness-gammu-hook {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stats(config: &Path) -> serde_json::Value {
    serde_json::from_str(&hook(config, &["spool", "stats", "--json"])).unwrap()
}

/// Poll `check` every 100 ms until it holds or `timeout` passes.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Keys, an inbox, and a forwarder config for one test.
struct Pipeline {
    dir: tempfile::TempDir,
    config: PathBuf,
    inbox_port: u16,
}

impl Pipeline {
    fn new(socks_port: Option<u16>, extra_forward: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
        ness(&["keygen", "--out", &p("provider.key")]);
        ness(&["keygen", "--out", &p("renter.key")]);
        ness(&["pubkey", "--keyfile", &p("renter.key"), "--out", &p("renter.pub")]);
        ness(&["pubkey", "--keyfile", &p("provider.key"), "--out", &p("provider.pub")]);
        let inbox_port = free_tcp_port();
        let socks = socks_port.map(|port| format!("socks5 = \"socks5h://127.0.0.1:{port}\"\n")).unwrap_or_default();
        let config = dir.path().join("sms.toml");
        std::fs::write(
            &config,
            format!(
                "[spool]\npath = \"{spool}\"\n\n[gammu]\nsmsdrc = \"{smsdrc}\"\n\n[forward]\nkeyfile = \"{key}\"\n{socks}\
                 retry_initial_ms = 200\nretry_max_ms = 1000\ntimeout_ms = 3000\n{extra_forward}\n\n\
                 [[route]]\nphone_ids = [\"sim1\"]\nrenter_keyfile = \"{renter}\"\ninbox_url = \"http://127.0.0.1:{inbox_port}/v1/sms\"\n",
                spool = p("spool/spool.db"),
                smsdrc = p("smsdrc"),
                key = p("provider.key"),
                renter = p("renter.pub"),
            ),
        )
        .unwrap();
        Pipeline { dir, config, inbox_port }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn inbox(&self) -> Proc {
        let mut inbox = Proc::start(
            bin("ness"),
            &[
                "inbox", "serve", "--listen", &format!("127.0.0.1:{}", self.inbox_port), "--db", &self.path("inbox.db"),
                "--keyfile", &self.path("renter.key"), "--provider", &self.path("provider.pub"),
            ],
            &[],
        );
        inbox.wait_for("listening on", Duration::from_secs(10));
        inbox
    }

    fn forwarder(&self) -> Proc {
        Proc::start(bin("ness-gammu-hook"), &["--config", self.config.to_str().unwrap(), "forward"], &[])
    }

    /// `ness inbox read --json`: (sender, text) of every message, in order stored.
    fn read_inbox(&self) -> Vec<(String, String)> {
        let out = ness(&["--json", "inbox", "read", "--db", &self.path("inbox.db"), "--keyfile", &self.path("renter.key")]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| (m["sender"].as_str().unwrap().to_owned(), m["text"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The `source` of every message in the inbox (which reader produced it).
    fn sources(&self) -> Vec<String> {
        let out = ness(&["--json", "inbox", "read", "--db", &self.path("inbox.db"), "--keyfile", &self.path("renter.key")]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().map(|m| m["source"].as_str().unwrap().to_owned()).collect()
    }

    fn delivered(&self) -> u64 {
        stats(&self.config)["delivered"].as_u64().unwrap()
    }
}

/// gammu's dummy phone, fed with SMS backup files; gammu-smsd runs our hook.
struct Gammu {
    device: PathBuf,
    next_location: u32,
    _smsd: Proc,
}

/// A gammu-smsd config from dialplan/gammu/ as shipped, pointed at this test's
/// directories and gammu's dummy phone, polling every second.
fn shipped_smsdrc(name: &str, p: &Pipeline) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("dialplan/gammu").join(name)).unwrap();
    let d = p.dir.path().display().to_string();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
        let line = match key.as_str() {
            "device" => format!("device = {d}/dummy\ngammuloc = /dev/null"),
            "connection" => "connection = none".into(),
            "logfile" => format!("logfile = {d}/smsd.log"),
            "receivefrequency" => "receivefrequency = 1".into(),
            _ => line
                .replace("/var/spool/gammu/", &format!("{d}/"))
                .replace("/var/lib/gammu/", &format!("{d}/"))
                .replace("/usr/local/bin/ness-gammu-hook", &bin("ness-gammu-hook").display().to_string())
                .replace("/etc/ness/sms.toml", p.config.to_str().unwrap()),
        };
        out.push_str(&line);
        out.push('\n');
    }
    // [smsd] is the last section: quick polling, no modem checks.
    out.push_str("commtimeout = 1\nstatusfrequency = 0\nmultiparttimeout = 10\nchecksecurity = 0\ncheckbattery = 0\nchecksignal = 0\nchecknetwork = 0\n");
    out
}

impl Gammu {
    /// Run gammu-smsd with the config `rc` (see [`shipped_smsdrc`]).
    fn start(p: &Pipeline, rc: &str) -> Gammu {
        let smsd_bin = require_tool("gammu-smsd", "gammu-smsd");
        let device = p.dir.path().join("dummy");
        for d in ["dummy", "inbox", "outbox", "sent", "error"] {
            std::fs::create_dir_all(p.dir.path().join(d)).unwrap();
        }
        std::fs::write(p.path("smsdrc"), rc).unwrap();
        // Debian's unit reads LANG from /etc/default/gammu-smsd (dialplan/gammu/default-gammu-smsd).
        let smsd = Proc::start_in(smsd_bin, &["-c", &p.path("smsdrc"), "-X", "120"], &[("LANG", "C.UTF-8")], Some(p.dir.path()));
        Gammu { device, next_location: 1, _smsd: smsd }
    }

    /// Put one physical SMS in the SIM inbox (temp name, then rename: the driver
    /// only reads numeric names).
    fn put(&mut self, part: &BackupPart) {
        let dir = self.device.join("sms/1");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("tmp{}", self.next_location));
        std::fs::write(&tmp, write_incoming(part)).unwrap();
        std::fs::rename(&tmp, dir.join(self.next_location.to_string())).unwrap();
        self.next_location += 1;
    }

    /// A message, split into parts the way a phone would (153 GSM septets or 67
    /// UTF-16 units per part, with an 8-bit concatenation reference).
    fn send(&mut self, sender: &str, text: &str, unicode: bool, reference: u8) {
        let units: Vec<u16> = text.encode_utf16().collect();
        let (single, per) = if unicode { (70, 67) } else { (160, 153) };
        let coding = if unicode { "Unicode" } else { "Default" };
        let chunks: Vec<&[u16]> = if units.len() <= single { vec![&units[..]] } else { units.chunks(per).collect() };
        let total = chunks.len() as u8;
        for (i, chunk) in chunks.iter().enumerate() {
            let udh = if total > 1 { vec![0x05, 0x00, 0x03, reference, total, i as u8 + 1] } else { vec![] };
            self.put(&BackupPart {
                number: sender.into(),
                sent: Some("20240102T030405".into()),
                coding: coding.into(),
                udh,
                units: chunk.to_vec(),
            });
        }
    }

    fn log(&self, p: &Pipeline) -> String {
        std::fs::read_to_string(p.dir.path().join("smsd.log")).unwrap_or_default()
    }
}

/// microsocks on a free loopback port, listening (another test may have taken the
/// port between our probe and its bind: then try another).
fn microsocks() -> (Proc, u16) {
    let socks_bin = require_tool("microsocks", "microsocks");
    for _ in 0..5 {
        let port = free_tcp_port();
        let mut p = Proc::start(socks_bin.clone(), &["-i", "127.0.0.1", "-p", &port.to_string()], &[]);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && p.running() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (p, port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("microsocks did not start listening on loopback");
}

/// Three messages (GSM with escapes, UCS-2 with an emoji, 3 parts) through a real
/// gammu-smsd with the given backend, forwarded through microsocks.
fn through_gammu(rc: impl Fn(&Pipeline) -> String, senders: [&str; 3], source: &str) -> (Pipeline, Gammu) {
    let (mut socks, socks_port) = microsocks();
    let p = Pipeline::new(Some(socks_port), "");
    let mut gammu = Gammu::start(&p, &rc(&p));
    gammu.send(senders[0], GSM_TEXT, false, 0);
    gammu.send(senders[1], UCS2_TEXT, true, 0);
    gammu.send(senders[2], &long_text(), false, 0xA7);
    wait_until("gammu-smsd to run the hook for 3 messages", Duration::from_secs(60), || {
        stats(&p.config)["pending"].as_u64() == Some(3)
    });
    let _inbox = p.inbox();
    let _fwd = p.forwarder();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.delivered() != 3 {
        assert!(
            Instant::now() < deadline,
            "the forwarder did not deliver 3 messages in 30 s; spool:\n{}\nmicrosocks: {:?}",
            hook(&p.config, &["spool", "list"]),
            socks.drain()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got = p.read_inbox();
    got.sort();
    let mut want = vec![
        (senders[0].to_owned(), GSM_TEXT.to_owned()),
        (senders[1].to_owned(), UCS2_TEXT.to_owned()),
        (senders[2].to_owned(), long_text()),
    ];
    want.sort();
    assert_eq!(got, want, "gammu log:\n{}", gammu.log(&p));
    // Really through the proxy: microsocks logs each connection it made.
    let connected = format!("connected to 127.0.0.1:{}", p.inbox_port);
    assert!(socks.drain().iter().any(|l| l.contains(&connected)), "microsocks did not carry the deliveries: {:?}", socks.log);
    assert!(!gammu.log(&p).contains("Process failed"), "the hook failed:\n{}", gammu.log(&p));
    assert!(!gammu.log(&p).contains("using the environment instead"), "the hook fell back:\n{}", gammu.log(&p));
    assert_eq!(p.sources(), vec![source; 3], "read from the expected place");
    (p, gammu)
}

#[test]
fn files_backend_with_inbox_files_as_arguments() {
    // For gammu 1.43.3 and newer, which quote the file names: the shipped config
    // without its ` #`, so the hook reads the UTF-16 inbox files.
    let (p, g) = through_gammu(
        |p| shipped_smsdrc("gammu-smsdrc.files", p).replace(" receive #", " receive"),
        ["+4915112345678", "+79161234567", "+15551234567"],
        "gammu-files",
    );
    let log = g.log(&p);
    assert!(log.contains("IN20240102_030405_00_+15551234567_02.txt"), "three part files were passed:\n{log}");
}

#[test]
fn shipped_files_config_with_the_1_42_workaround_and_hostile_senders() {
    // ` #`: gammu 1.42 appends unquoted file names; the comment swallows them, so a
    // sender like `x;id>inj` cannot run `id` (without it, it does).
    let (p, g) = through_gammu(
        |p| shipped_smsdrc("gammu-smsdrc.files", p),
        ["x;id>inj", "My Bank", "$(touch pwned)"],
        "gammu-env",
    );
    assert!(!p.dir.path().join("inj").exists(), "the sender name was executed");
    assert!(!p.dir.path().join("pwned").exists(), "the sender name was executed");
    assert!(g.log(&p).contains("ness-gammu-hook: spooled"));
}

#[test]
fn shipped_sql_config_with_a_slash_in_the_sender() {
    let schema = Path::new("/usr/share/doc/gammu-smsd/examples/sqlite.sql");
    assert!(schema.exists(), "this test needs gammu-smsd's example SQLite schema at {}", schema.display());
    let sqlite3 = require_tool("sqlite3", "sqlite3");
    let dbd = Path::new("/usr/lib/x86_64-linux-gnu/dbd/libdbdsqlite3.so");
    assert!(dbd.exists(), "gammu-smsd's SQLite driver {} is missing (Debian package libdbd-sqlite3)", dbd.display());
    // `/` in a sender blocks gammu 1.42's files backend; with sql it is just data.
    through_gammu(
        |p| {
            let db = p.dir.path().join("smsd.db");
            let out = run(&sqlite3, &[db.to_str().unwrap(), &format!(".read {}", schema.display())], &[], Duration::from_secs(10));
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            shipped_smsdrc("gammu-smsdrc.sql", p)
        },
        ["Bank/Alerts", "+79161234567", "x;id>inj"],
        "gammu-sql",
    );
}

#[test]
fn shipped_null_config_reads_the_environment() {
    through_gammu(|p| shipped_smsdrc("gammu-smsdrc.null", p), ["+4915112345678", "+79161234567", "MyBank"], "gammu-env");
}

/// Spool `n` messages for sim1 without gammu (the import path the operator has too).
fn import(p: &Pipeline, n: usize) -> Vec<String> {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("{:032x}", 0xfeed0000u64 + i as u64), "phone_id": "sim1", "sender": format!("+1555000{i:04}"),
                "text": format!("message {i}"), "received_at": "2026-11-22T00:00:00Z",
                "parts_expected": 1, "parts_received": 1, "source": "gammu-env",
            })
            .to_string()
        })
        .collect();
    let file = p.dir.path().join("import.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    hook(&p.config, &["spool", "import", file.to_str().unwrap()]);
    (0..n).map(|i| format!("message {i}")).collect()
}

/// GET /metrics from the forwarder.
fn metrics(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn inbox_down_for_a_while_then_delivered_once() {
    let metrics_port = free_tcp_port();
    let p = Pipeline::new(None, &format!("metrics_listen = \"127.0.0.1:{metrics_port}\""));
    let texts = import(&p, 5);
    let _fwd = p.forwarder();
    // Nothing listens yet: attempts fail and are retried.
    wait_until("failed attempts to be recorded", Duration::from_secs(20), || {
        let list: serde_json::Value = serde_json::from_str(&hook(&p.config, &["spool", "list", "--json"])).unwrap();
        list.as_array().unwrap().iter().all(|m| m["attempts"].as_u64().unwrap() >= 2 && m["last_error"].is_string())
    });
    assert_eq!(p.delivered(), 0);
    let _inbox = p.inbox();
    wait_until("delivery after the inbox came back", Duration::from_secs(20), || p.delivered() == 5);
    std::thread::sleep(Duration::from_millis(500));
    let mut got: Vec<String> = p.read_inbox().into_iter().map(|(_, t)| t).collect();
    got.sort();
    assert_eq!(got, texts, "each message exactly once");
    // The operator sees it all on /metrics.
    wait_until("the spool gauge to catch up", Duration::from_secs(5), || {
        metric(&metrics(metrics_port), "ness_sms_spool_messages{state=\"delivered\"}") == 5.0
    });
    let m = metrics(metrics_port);
    assert_eq!(metric(&m, "ness_sms_delivered_total"), 5.0);
    assert!(metric(&m, "ness_sms_delivery_failures_total{reason=\"connect\"}") >= 10.0, "{m}");
    assert!(metric(&m, "ness_sms_delivery_attempts_total") >= 15.0, "{m}");
    // Reading marks messages read; --unread then shows none.
    ness(&["inbox", "read", "--db", &p.path("inbox.db"), "--keyfile", &p.path("renter.key"), "--mark-read"]);
    let unread = ness(&["--json", "inbox", "read", "--db", &p.path("inbox.db"), "--keyfile", &p.path("renter.key"), "--unread"]);
    assert_eq!(unread.trim(), "[]");
    // A mistyped database path is an error, not an empty inbox.
    let out = run(&bin("ness"), &["inbox", "read", "--db", &p.path("typo.db"), "--keyfile", &p.path("renter.key")], &[], Duration::from_secs(10));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no inbox database"));
    assert!(!Path::new(&p.path("typo.db")).exists());
}

/// A TCP relay that SIGKILLs `victim` when the first answer comes back from the
/// inbox, before passing it on: the inbox has stored the message, the forwarder
/// never sees the receipt.
fn killing_relay(listen: TcpListener, upstream: u16, victim: Arc<AtomicU32>, armed: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        for client in listen.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
            });
            let (victim, armed) = (victim.clone(), armed.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = server.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if armed.swap(false, Ordering::SeqCst) {
                        // SAFETY: kill(2) on the PID of the forwarder this test started.
                        unsafe { libc::kill(victim.load(Ordering::SeqCst) as libc::pid_t, libc::SIGKILL) };
                        return;
                    }
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[test]
fn forwarder_killed_mid_send_delivers_exactly_once() {
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let p = Pipeline::new(None, "concurrency = 1");
    // The route goes through the relay.
    let cfg = std::fs::read_to_string(&p.config).unwrap().replace(&format!("127.0.0.1:{}/v1/sms", p.inbox_port), &format!("127.0.0.1:{relay_port}/v1/sms"));
    std::fs::write(&p.config, cfg).unwrap();
    let texts = import(&p, 3);
    let _inbox = p.inbox();
    let victim = Arc::new(AtomicU32::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    killing_relay(relay, p.inbox_port, victim.clone(), armed.clone());
    let mut first = p.forwarder();
    victim.store(first.pid(), Ordering::SeqCst);
    wait_until("the relay to kill the forwarder", Duration::from_secs(20), || !armed.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(200));
    first.kill_hard();
    assert_eq!(p.delivered(), 0, "the receipt never reached the forwarder");
    assert_eq!(p.read_inbox().len(), 1, "but the inbox stored the first message");
    let _second = p.forwarder();
    wait_until("delivery after the restart", Duration::from_secs(20), || p.delivered() == 3);
    let mut got: Vec<String> = p.read_inbox().into_iter().map(|(_, t)| t).collect();
    got.sort();
    assert_eq!(got, texts, "each message exactly once");
}

#[test]
fn modem_reader_against_a_fake_modem_on_a_pty() {
    use ness_core::sms::pdu::{Scts, encode_text};
    let socat = require_tool("socat", "socat");
    let dir = tempfile::tempdir().unwrap();
    let (modem, host) = (dir.path().join("modem"), dir.path().join("host"));
    let _pty = Proc::start(
        socat,
        &["-d", "-d", &format!("pty,raw,echo=0,link={}", modem.display()), &format!("pty,raw,echo=0,link={}", host.display())],
        &[],
    );
    wait_until("socat to create the PTY pair", Duration::from_secs(10), || modem.exists() && host.exists());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = ness_gammu_hook::modem::fake::FakeModem::new();
    let control = fake.control();
    let port = rt.block_on(async { tokio_serial::SerialStream::open(&tokio_serial::new(host.to_string_lossy(), 115_200)) }).unwrap();
    rt.spawn(fake.serve(port));

    let scts = Scts { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, tz_quarters: 4 };
    // One waiting before the reader starts, the rest announced with +CMTI.
    control.store(&encode_text("+4915112345678", GSM_TEXT, &scts, 0)[0]);
    control.store("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"); // fine
    control.store("0004"); // malformed: stays on the SIM, logged

    let config = dir.path().join("sms.toml");
    std::fs::write(&config, format!("[spool]\npath = \"{}\"\n\n[modem]\nphone_id = \"sim1\"\npoll_secs = 30\n", dir.path().join("spool.db").display())).unwrap();
    let mut reader = Proc::start(bin("ness-gammu-hook"), &["--config", config.to_str().unwrap(), "modem", "--device", modem.to_str().unwrap()], &[]);
    wait_until("the two stored messages", Duration::from_secs(20), || stats(&config)["pending"].as_u64() == Some(2));
    for pdu in encode_text("+79161234567", UCS2_TEXT, &scts, 0) {
        control.inject(&pdu);
    }
    let parts = encode_text("+15551234567", &long_text(), &scts, 0x42);
    assert_eq!(parts.len(), 3);
    for pdu in parts.iter().rev() {
        control.inject(pdu);
    }
    wait_until("the announced messages", Duration::from_secs(20), || stats(&config)["pending"].as_u64() == Some(4));
    wait_until("the SIM copies to be deleted", Duration::from_secs(10), || control.stored() == vec!["0004".to_string()]);

    let conn = rusqlite::Connection::open(dir.path().join("spool.db")).unwrap();
    let mut texts: Vec<String> = conn
        .prepare("SELECT body FROM message")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| ness_core::sms::Sms::from_json(&b.unwrap()).unwrap().text)
        .collect();
    texts.sort();
    let mut want = vec![GSM_TEXT.to_owned(), UCS2_TEXT.to_owned(), long_text(), "How are you?".to_owned()];
    want.sort();
    assert_eq!(texts, want);
    let log = reader.drain().join("\n");
    assert!(log.contains("malformed PDU rejected"), "the bad PDU is reported: {log}");
    assert!(control.commands().iter().any(|c| c == "AT+CNMI=2,1,0,0,0"));
}

#[test]
fn a_spool_that_cannot_be_opened_loses_nothing() {
    let p = Pipeline::new(None, "");
    // Make the database path a directory: SQLite cannot open it.
    std::fs::create_dir_all(p.dir.path().join("spool/spool.db")).unwrap();
    std::fs::write(p.path("smsdrc"), "[smsd]\nservice = null\nphoneid = sim1\n").unwrap();
    let out = run(
        &bin("ness-gammu-hook"),
        &["--config", p.config.to_str().unwrap(), "receive"],
        &[("SMS_MESSAGES", "1"), ("SMS_1_NUMBER", "+4915112345678"), ("SMS_1_TEXT", "kept anyway"), ("PHONE_ID", "sim1")],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("instead"), "the hook says where the message went: {stderr}");
    let files: Vec<_> = std::fs::read_dir(p.dir.path().join("spool/fallback")).unwrap().collect();
    assert_eq!(files.len(), 1);
    // Once the database is usable, the forwarder takes the file in and delivers it.
    std::fs::remove_dir(p.dir.path().join("spool/spool.db")).unwrap();
    let _inbox = p.inbox();
    let _fwd = p.forwarder();
    wait_until("the fallback message to be delivered", Duration::from_secs(30), || {
        Path::new(&p.path("spool/spool.db")).exists() && p.delivered() == 1
    });
    assert_eq!(p.read_inbox(), vec![("+4915112345678".to_owned(), "kept anyway".to_owned())]);
}

#[test]
fn receive_run_by_hand_spools_nothing() {
    let p = Pipeline::new(None, "");
    let out = run(&bin("ness-gammu-hook"), &["--config", p.config.to_str().unwrap(), "receive"], &[], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RunOnReceive"));
    assert!(!Path::new(&p.path("spool/spool.db")).exists(), "no empty message was spooled");
}


/// The provider's Lua `on_sms` hook ([hooks] script) through real gammu-smsd
/// (dummy phone) and the forwarder: spam is dropped (kept in the spool as
/// dropped, with the reason), a bank message arrives tagged, one goes to
/// another renter's inbox, and scripts that raise errors or loop are stopped
/// with the message delivered as usual. SIGHUP swaps the script; one that does
/// not compile is refused and the running one stays.
#[test]
fn on_sms_hook_drops_tags_and_reroutes_through_gammu() {
    let p = Pipeline::new(None, "");
    ness(&["keygen", "--out", &p.path("bob.key")]);
    ness(&["pubkey", "--keyfile", &p.path("bob.key"), "--out", &p.path("bob.pub")]);
    let bob_port = free_tcp_port();
    let script = p.path("hooks.lua");
    let v1 = r#"
function on_sms(m)
  if m.text:find("WIN A PRIZE", 1, true) then return { drop = true, reason = "spam" } end
  if m.text:sub(1, 4) == "BANK" then return { tags = { "bank", "2fa" } } end
  if m.text:sub(1, 7) == "FOR BOB" then return { renter = "bob" } end
  if m.text:sub(1, 5) == "CRASH" then error("a bug in the filter") end
  if m.text:sub(1, 4) == "LOOP" then while true do end end
  return nil
end
"#;
    std::fs::write(&script, v1).unwrap();
    let mut config = std::fs::read_to_string(&p.config).unwrap();
    config.push_str(&format!(
        "\n[[route]]\nname = \"bob\"\nrenter_keyfile = \"{}\"\ninbox_url = \"http://127.0.0.1:{bob_port}/v1/sms\"\n\n[hooks]\nscript = \"{script}\"\ninstructions = 100000\n",
        p.path("bob.pub")
    ));
    std::fs::write(&p.config, config).unwrap();

    let mut gammu = Gammu::start(&p, &shipped_smsdrc("gammu-smsdrc.files", &p));
    let _inbox = p.inbox();
    let mut bob_inbox = Proc::start(
        bin("ness"),
        &["inbox", "serve", "--listen", &format!("127.0.0.1:{bob_port}"), "--db", &p.path("bob.db"), "--keyfile", &p.path("bob.key"), "--provider", &p.path("provider.pub")],
        &[],
    );
    bob_inbox.wait_for("listening on", Duration::from_secs(10));
    let mut fwd = Proc::start(bin("ness-gammu-hook"), &["--config", p.config.to_str().unwrap(), "forward"], &[("RUST_LOG", "info")]);
    fwd.wait_for("hooks: ", Duration::from_secs(10));
    for (sender, text) in [
        ("+4930111", "see you at 8"),
        ("+4930222", "You WIN A PRIZE, call now"),
        ("DKB", "BANK code 123456"),
        ("+4930333", "FOR BOB: the keys are under the mat"),
        ("+4930444", "CRASH this filter"),
        ("+4930555", "LOOP forever"),
    ] {
        gammu.send(sender, text, false, 0);
    }
    wait_until("five deliveries and one drop", Duration::from_secs(60), || {
        let s = stats(&p.config);
        s["delivered"].as_u64() == Some(5) && s["dropped"].as_u64() == Some(1)
    });
    let inbox = |db: &str, key: &str| -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&ness(&["--json", "inbox", "read", "--db", &p.path(db), "--keyfile", &p.path(key)])).unwrap().as_array().unwrap().clone()
    };
    let alice = inbox("inbox.db", "renter.key");
    let texts: Vec<&str> = alice.iter().map(|m| m["text"].as_str().unwrap()).collect();
    for t in ["see you at 8", "BANK code 123456", "CRASH this filter", "LOOP forever"] {
        assert!(texts.contains(&t), "{t:?} not delivered: {texts:?}");
    }
    assert!(!texts.iter().any(|t| t.contains("PRIZE") || t.starts_with("FOR BOB")), "{texts:?}");
    let bank = alice.iter().find(|m| m["text"] == "BANK code 123456").unwrap();
    assert_eq!(bank["tags"], serde_json::json!(["bank", "2fa"]), "the tags travel in the envelope");
    let bob = inbox("bob.db", "bob.key");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["text"], "FOR BOB: the keys are under the mat");
    let dropped = hook(&p.config, &["spool", "list", "--state", "dropped"]);
    assert!(dropped.contains("dropped by on_sms: spam"), "{dropped}");
    fwd.wait_for("on_sms failed: hooks.lua:6: a bug in the filter", Duration::from_secs(5));
    let log = fwd.drain().join("\n");
    assert!(log.contains("on_sms was stopped: it ran more than 100000 instructions"), "{log}");

    // SIGHUP: the new script drops everything; a broken one is refused.
    std::fs::write(&script, "function on_sms(m) return false end").unwrap();
    // SAFETY: kill(2) on the PID of our own child.
    unsafe { libc::kill(fwd.pid() as libc::pid_t, libc::SIGHUP) };
    fwd.wait_for("hooks: reloaded", Duration::from_secs(10));
    gammu.send("+4930666", "hello after the reload", false, 0);
    wait_until("the message after the reload to be dropped", Duration::from_secs(60), || stats(&p.config)["dropped"].as_u64() == Some(2));
    std::fs::write(&script, "function on_sms(m)\n  return {\nend\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(fwd.pid() as libc::pid_t, libc::SIGHUP) };
    fwd.wait_for("does not compile", Duration::from_secs(10));
    gammu.send("+4930777", "hello after a broken reload", false, 0);
    wait_until("the running script to drop it still", Duration::from_secs(60), || stats(&p.config)["dropped"].as_u64() == Some(3));
    assert_eq!(stats(&p.config)["delivered"].as_u64(), Some(5));
}
