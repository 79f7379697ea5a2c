//! Helpers for the end-to-end tests in tests/: finding the suite's binaries,
//! running them as child processes (stopped by PID when dropped), reading the
//! addresses they print, and running real clients such as `dig`.
//!
//! The binaries and privateness.so must be built first (`cargo build --workspace`,
//! which the README's test command does); a missing one fails the test with that advice.

pub mod netns;
pub mod udp_forward;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of one of the suite's binaries, next to the test executable's target dir.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// A program that must be installed for a test; fails loudly if it is not.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("this test needs `{name}` (Debian package {package}); .ci/run installs it — install it and run again");
}

/// A child process, killed (by its PID) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Proc {
    /// Start `program`; its stderr and stdout lines are collected.
    pub fn start(program: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::start_in(program, args, env, None::<&std::path::Path>)
    }

    /// [`Proc::start`] in the working directory `cwd`.
    pub fn start_in(program: PathBuf, args: &[&str], env: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Proc {
        let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cmd = Command::new(&program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let (tx, rx) = mpsc::channel();
        for stream in [child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc { name, child, lines: rx, log: Vec::new() }
    }

    /// Wait (at most `timeout`) for an output line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{} did not print {needle:?} within {timeout:?}; it printed:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
    }

    /// SIGKILL, at once: a crash the program gets no chance to tidy up after.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lines printed so far (without waiting).
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait at most `timeout` for it to exit by itself; its exit status, or None
    /// if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop it: SIGTERM (a Kamailio main process then stops its own children),
    /// and SIGKILL if it is still there after two seconds. Only our own child, by PID.
    pub fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first `http://host:port/` or `host:port` after `marker` in `line`.
pub fn addr_after(line: &str, marker: &str) -> String {
    let rest = &line[line.find(marker).unwrap_or_else(|| panic!("{marker:?} not in {line:?}")) + marker.len()..];
    let rest = rest.trim_start().trim_start_matches("http://");
    rest.split(|c: char| c == '/' || c.is_whitespace()).next().unwrap_or("").to_owned()
}

/// Run a command to completion with a deadline (a test must never hang).
pub fn run(program: &std::path::Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{} {args:?} did not finish within {timeout:?}; stderr: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The price (micro-EMC per minute) and risk a RANDPAY ledger recorded for a call.
pub fn ledger_price(ledger: &std::path::Path, call_id: &str) -> (i64, u32) {
    let db = rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    db.query_row("SELECT price, risk FROM calls WHERE call_id = ?1", [call_id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

/// A devnet (`--automine`) with the wallets `payee` and `payer`, the payer's
/// funded with 101 blocks: the two sides of a RANDPAY test. Returns its URL.
pub fn randpay_devnet(user: &str, password: &str) -> (Proc, String) {
    use ness_core::nvs::{Credentials, NodeConfig, NvsClient};
    let mut p = Proc::start(
        bin("ness-devnet"),
        &["--listen", "127.0.0.1:0", "--rpcuser", user, "--automine"],
        &[("NESS_DEVNET_RPCPASSWORD", password)],
    );
    let url = format!("http://{}/", addr_after(&p.wait_for("JSON-RPC on", Duration::from_secs(20)), "JSON-RPC on"));
    let client = |wallet: Option<&str>| {
        let cfg = NodeConfig::new(&url, Credentials::UserPassword { user: user.into(), password: password.into() })
            .with_wallet(wallet.map(str::to_owned));
        NvsClient::new(&cfg).unwrap()
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        for w in ["payee", "payer"] {
            client(None).call("createwallet", vec![serde_json::json!(w)]).await.unwrap();
        }
        client(Some("payer")).call("generate", vec![serde_json::json!(101)]).await.unwrap();
    });
    (p, url)
}

/// A Kamailio running one of the shipped RANDPAY cfgs (dialplan/kamailio/randpay-*.cfg)
/// with privateness.so, its control socket and ledger under `dir`.
pub struct KamailioPbx {
    pub proc: Proc,
    pub dir: std::path::PathBuf,
}

impl KamailioPbx {
    /// Start one side with its shipped cfg; `extra` are more `-A` defines.
    /// `node` is the devnet's URL, RPC user and password; the wallet is named after `role`.
    pub fn start(cfg: &str, role: &str, port: u16, node: (&str, &str, &str), dir: &std::path::Path, extra: &[String]) -> KamailioPbx {
        let (node_url, user, password) = node;
        let dir = dir.join(role);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let mut defines = vec![
            format!("LISTEN=udp:127.0.0.1:{port}"),
            format!("PRIVATENESS_SO=\"{}\"", bin("libprivateness.so").display()),
            format!("NODE_URL=\"{node_url}\""),
            format!("RPC_USER=\"{user}\""),
            format!("RPC_PASSWORD=\"{password}\""),
            format!("WALLET=\"{role}\""),
            format!("LEDGER=\"{}\"", dir.join("ledger.db").display()),
            format!("CTL_SOCKET=\"unix:{}\"", dir.join("run/ctl").display()),
            "CHILDREN=2".to_owned(),
        ];
        defines.extend_from_slice(extra);
        let cfg = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("dialplan/kamailio").join(cfg);
        let run_dir = dir.join("run");
        let mut args = vec![
            "-f".to_owned(), cfg.display().to_string(), "-DD".into(), "-E".into(), "-e".into(),
            "-Y".into(), run_dir.display().to_string(), "-P".into(), run_dir.join("kamailio.pid").display().to_string(),
            "-m".into(), "64".into(), "-M".into(), "8".into(),
        ];
        for d in &defines {
            args.push("-A".into());
            args.push(d.clone());
        }
        let mut proc = Proc::start(require_tool("kamailio", "kamailio"), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        proc.wait_for(&format!("randpay: {role} process ready"), Duration::from_secs(20));
        KamailioPbx { proc, dir }
    }

    pub fn kamcmd(&self, args: &[&str]) -> String {
        let sock = format!("unix:{}", self.dir.join("run/ctl").display());
        let mut all = vec!["-s", sock.as_str()];
        all.extend_from_slice(args);
        let out = run(&require_tool("kamcmd", "kamailio"), &all, &[], Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `randpay.ledger <call-id>` as key → value.
    pub fn ledger(&self, call_id: &str) -> std::collections::HashMap<String, String> {
        fields(&self.kamcmd(&["randpay.ledger", &format!("s:{call_id}")]))
    }

    /// `randpay.calls`: paid intervals (payee) or tickets sent on a side channel (payer) by Call-ID.
    pub fn paid_intervals(&self) -> std::collections::HashMap<String, u32> {
        let text = self.kamcmd(&["randpay.calls"]);
        let mut out = std::collections::HashMap::new();
        let mut id = None;
        for (k, v) in text.lines().filter_map(|l| l.trim().split_once(": ")) {
            match k {
                "call_id" => id = Some(v.to_owned()),
                "paid_intervals" | "tickets" => {
                    if let Some(id) = id.take() {
                        out.insert(id, v.parse().unwrap());
                    }
                }
                _ => {}
            }
        }
        out
    }

    pub fn log(&mut self) -> String {
        self.proc.drain().join("\n")
    }
}

/// `key: value` lines of kamcmd's output.
pub fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines().filter_map(|l| l.trim().split_once(": ")).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

