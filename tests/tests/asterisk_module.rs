//! res_privateness.so, two ways:
//!
//! - in CI, inside the fake Asterisk (src/bin/fake-asterisk.rs), which plays the
//!   loader, dialplan and CLI against a devnet: registration, every function and
//!   CLI command, reload with and without cache carry-over, node failures within
//!   the deadline, unload refused while a call uses the module, and every
//!   registration undone at unload;
//! - with `ASTERISK_PREFIX` set to an installed Asterisk 20 or 22, inside the
//!   real thing: a Local channel runs a dialplan that calls the functions, the
//!   module is unloaded (refused during the call), unmapped and loaded again.
//!   Without `ASTERISK_PREFIX` that test says loudly that it did not run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ness_core::nvs::{Credentials, NameValue, NodeConfig, NvsClient};
use ness_tests::{Proc, addr_after, bin, run};

const USER: &str = "ast";
const PASSWORD: &str = "ast-password";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A devnet with the demo data (+15551234567 and friends, verifier ver:enum).
fn devnet() -> (Proc, String) {
    let mut p = Proc::start(
        bin("ness-devnet"),
        &["--listen", "127.0.0.1:0", "--rpcuser", USER, "--seed-demo"],
        &[("NESS_DEVNET_RPCPASSWORD", PASSWORD)],
    );
    let url = format!(
        "http://{}/",
        addr_after(
            &p.wait_for("JSON-RPC on", Duration::from_secs(20)),
            "JSON-RPC on"
        )
    );
    p.wait_for("ready", Duration::from_secs(60));
    (p, url)
}

fn conf(dir: &Path, url: &str, extra: &str) {
    std::fs::write(
        dir.join("privateness.conf"),
        format!("[general]\nnode_url = {url}\nrpc_user = {USER}\nrpc_password = {PASSWORD}\ntimeout_ms = 500\nlookup_timeout_ms = 1000\n{extra}"),
    )
    .unwrap();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn module() -> PathBuf {
    bin("libres_privateness.so")
}

// ---- the fake host ------------------------------------------------------------------

struct FakeAsterisk {
    child: Child,
    stdin: ChildStdin,
    /// Answer lines, read on a thread so that a hung module fails the test
    /// (after ANSWER_WAIT) instead of stalling it.
    lines: std::sync::mpsc::Receiver<String>,
}

/// Longest a single fake-host command may take (lookups are bounded by 1 s).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

impl FakeAsterisk {
    fn start(conf_dir: &Path) -> FakeAsterisk {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-asterisk"))
            .env("FAKE_AST_CONFIG_DIR", conf_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-asterisk");
        let stdin = child.stdin.take().unwrap();
        let stdout: BufReader<ChildStdout> = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        FakeAsterisk { child, stdin, lines }
    }

    fn line(&mut self) -> String {
        match self.lines.recv_timeout(ANSWER_WAIT) {
            Ok(l) => l.trim_end().to_owned(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("fake-asterisk gave no answer within {ANSWER_WAIT:?} (the module is stuck?)")
            }
            Err(_) => panic!("fake-asterisk died (a crash in the module?)"),
        }
    }

    /// One command, one line of answer.
    fn cmd(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").unwrap();
        self.line()
    }

    /// One command whose answer ends with a "." line.
    fn block(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").unwrap();
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == "." {
                return out.join("\n");
            }
            out.push(l);
        }
    }

    /// `read CHAN FUNC ARGS` → (rc, value, microseconds).
    fn read(&mut self, chan: &str, func: &str, args: &str) -> (i32, String, u64) {
        let r = self.cmd(&format!("read {chan} {func} {args}"));
        let rc = r
            .strip_prefix("rc=")
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok());
        let us = r
            .split(" us=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok());
        let value = r.split_once(" value=").map(|(_, v)| v.to_owned());
        match (rc, value, us) {
            (Some(rc), Some(v), Some(us)) => (rc, v, us),
            _ => panic!("read {func}({args}): unexpected answer {r:?}"),
        }
    }

    fn value(&mut self, chan: &str, func: &str, args: &str) -> String {
        let (rc, v, _) = self.read(chan, func, args);
        assert_eq!(
            rc,
            0,
            "{func}({args}) failed: {v:?}\n{}",
            self.block("logs")
        );
        v
    }
}

impl Drop for FakeAsterisk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils)");
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fake_host_loads_runs_reloads_and_unloads_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let so = module().to_string_lossy().into_owned();
    let mut ast = FakeAsterisk::start(dir.path());

    // No privateness.conf: declined with a line saying what to do; nothing left behind.
    let reg = ast.cmd(&format!("dlopen {so}"));
    assert!(reg.starts_with("registered name=res_privateness "), "{reg}");
    assert_eq!(ast.cmd("load"), "rc=1");
    let logs = ast.block("logs");
    assert!(
        logs.contains("privateness.conf not found in") && logs.contains("module declined"),
        "{logs}"
    );
    assert!(ast.cmd("state").starts_with("functions=[] clis=[] apps=[]"));
    assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false");

    let (mut node, url) = devnet();
    // The shipped privateness.conf, pointed at the devnet.
    let shipped = std::fs::read_to_string(repo().join("dialplan/asterisk/privateness.conf")).unwrap();
    let shipped = shipped
        .replace("node_url = http://127.0.0.1:6662/", &format!("node_url = {url}"))
        .replace("rpc_user = emccoinrpc", &format!("rpc_user = {USER}"))
        .replace("rpc_password = change-me", &format!("rpc_password = {PASSWORD}"));
    assert!(shipped.contains(&url) && shipped.contains(PASSWORD), "the shipped privateness.conf changed shape");
    std::fs::write(dir.path().join("privateness.conf"), shipped).unwrap();
    let reg = ast.cmd(&format!("dlopen {so}"));
    // The loader's checks: the GPL key's MD5, an empty build-option sum, load and unload set.
    let key = unhex(
        reg.split("key_hex=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap(),
    );
    assert_eq!(
        md5_hex(&key),
        "8776793523ea3ad3252abb3587e42224",
        "ASTERISK_GPL_KEY"
    );
    assert!(
        reg.contains("load=true unload=true") && reg.ends_with("buildopt_sum=\"\""),
        "{reg}"
    );
    assert_eq!(ast.cmd("load"), "rc=0");
    let state = ast.cmd("state");
    assert!(
        state.starts_with(
            r#"functions=["EMC_ENUM", "EMC_ENUM_QUERY", "EMC_ENUM_RESULT", "EMC_NVS", "EMC_TRUNK", "RANDPAY"] clis=["privateness show status", "privateness lookup", "privateness cache flush", "privateness reload hooks", "privateness show trunks", "randpay show calls", "randpay show ledger"] apps=["RandpayRequire"] usecount=0"#
        ),
        "{state}"
    );

    // EMC_ENUM, like ENUMLOOKUP: best URI without its scheme; c, u, record N; other services.
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567"),
        "15551234567@pbx.example.org"
    );
    assert_eq!(ast.value("-", "EMC_ENUM", "+1-555-123-4567,sip,c"), "3");
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567,pjsip,u"),
        "sip:15551234567@pbx.example.org"
    );
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567,sip,,2"),
        "alice@sip.example.com"
    );
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567,sip,,3"),
        "+15551234567@backup.example.net"
    );
    assert_eq!(ast.value("-", "EMC_ENUM", "+15551234567,sip,,4"), "");
    assert_eq!(ast.value("-", "EMC_ENUM", "15551234567,iax2"), "");
    // A squatter's unsigned record and a revoked record do not count.
    assert_eq!(ast.value("-", "EMC_ENUM", "+4930123456,sip,c"), "1");
    assert_eq!(ast.value("-", "EMC_ENUM", "+442079460000"), "");
    assert_eq!(ast.value("-", "EMC_ENUM", "+15559999999,sip,c"), "0");
    // Bad input: an error and a warning, never a crash.
    let long = "9".repeat(4000);
    for bad in [
        "",
        "+1abc",
        "+15551234567,sip,x",
        "+15551234567,sip,s",
        "+15551234567,sip,,0",
        "+15551234567,sip,,1,e164.org",
        long.as_str(),
    ] {
        let (rc, v, _) = ast.read("-", "EMC_ENUM", bad);
        assert_eq!((rc, v.as_str()), (-1, ""), "EMC_ENUM({bad})");
    }
    let logs = ast.block("logs");
    assert!(
        logs.contains("is not an E.164 number") && logs.contains("option 's' is not supported"),
        "{logs}"
    );

    // On a channel: status variables, query/result kept on the channel.
    let chan = ast
        .cmd("chan new")
        .strip_prefix("chan=")
        .unwrap()
        .to_owned();
    assert_eq!(
        ast.value(&chan, "EMC_ENUM", "+15551234567"),
        "15551234567@pbx.example.org"
    );
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "FOUND");
    assert_eq!(ast.value(&chan, "EMC_ENUM", "+15559999999"), "");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "NOTFOUND");
    assert_eq!(ast.read(&chan, "EMC_ENUM", "+1x").0, -1);
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "INVALID");
    let id = ast.value(&chan, "EMC_ENUM_QUERY", "+15551234567");
    assert_eq!(
        ast.value(&chan, "EMC_ENUM_RESULT", &format!("{id},getnum")),
        "3"
    );
    assert_eq!(
        ast.value(&chan, "EMC_ENUM_RESULT", &format!("{id},2")),
        "alice@sip.example.com"
    );
    assert_eq!(ast.value(&chan, "EMC_ENUM_RESULT", &format!("{id},9")), "");
    let all = ast.value(&chan, "EMC_ENUM_QUERY", "+15551234567,ALL");
    assert_eq!(
        ast.value(&chan, "EMC_ENUM_RESULT", &format!("{all},1")),
        "sip:15551234567@pbx.example.org"
    );
    assert_eq!(ast.read(&chan, "EMC_ENUM_RESULT", "999999,1").0, -1);
    assert_eq!(
        ast.read("-", "EMC_ENUM_QUERY", "+15551234567").0,
        -1,
        "EMC_ENUM_QUERY needs a channel"
    );

    // EMC_NVS: any name; a missing one is empty with a warning and NOTFOUND.
    assert!(
        ast.value(&chan, "EMC_NVS", "ver:enum")
            .starts_with("Privateness demo ENUM verifier")
    );
    assert_eq!(ast.cmd(&format!("var {chan} EMC_NVS_STATUS")), "FOUND");
    assert_eq!(ast.value(&chan, "EMC_NVS", "dns:nothing-here.emc"), "");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_NVS_STATUS")), "NOTFOUND");
    assert!(
        ast.block("logs")
            .contains("EMC_NVS(dns:nothing-here.emc): no such name")
    );

    // Cache hits are answered on the caller's thread.
    let (_, _, us) = ast.read("-", "EMC_ENUM", "+15551234567");
    assert!(us < 50_000, "a cache hit took {us} us");

    // CLI.
    let status = ast.block("cli privateness show status");
    assert!(
        status.contains("reachable, block")
            && status.contains("verifiers ver:enum")
            && status.contains("Counters:"),
        "{status}"
    );
    assert!(
        !status.contains(PASSWORD),
        "the RPC password must not be shown"
    );
    let lookup = ast.block("cli privateness lookup +4930123456");
    assert!(
        lookup.contains("ignored enum:4930123456:1") && lookup.contains("E2U+sip"),
        "{lookup}"
    );
    assert!(ast.block("cli privateness lookup").contains("(showusage)"));
    assert!(
        ast.block("cli privateness lookup 12ab")
            .contains("not an E.164 number")
    );
    assert!(
        ast.block("complete privateness lookup | +1555")
            .split(' ')
            .any(|w| w == "+15551234567")
    );
    let flushed = ast.block("cli privateness cache flush");
    assert!(
        flushed.starts_with("Cache flushed (") && !flushed.starts_with("Cache flushed (0"),
        "{flushed}"
    );

    // Reload: unchanged; tunables (cache kept); trust (cache emptied); invalid (old settings stay).
    ast.value("-", "EMC_ENUM", "+15551234567");
    assert_eq!(ast.cmd("reload"), "rc=0");
    assert!(ast.block("logs").contains("privateness.conf unchanged"));
    conf(dir.path(), &url, "ttl_cap = 120\n");
    assert_eq!(ast.cmd("reload"), "rc=0");
    assert!(
        ast.block("logs")
            .contains("privateness.conf reloaded: cache kept (1 cached)")
    );
    conf(
        dir.path(),
        &url,
        "ttl_cap = 120\nbogus_key = 1\ntimeout_ms = soon\n",
    );
    assert_eq!(ast.cmd("reload"), "rc=1");
    let logs = ast.block("logs");
    assert!(
        logs.contains("unknown setting \"bogus_key\"")
            && logs.contains("line 9: setting timeout_ms"),
        "{logs}"
    );
    assert_eq!(
        ast.cmd("reload"),
        "rc=1",
        "a file that is still invalid is not 'unchanged'"
    );
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567"),
        "15551234567@pbx.example.org"
    );
    conf(dir.path(), &url, "verifiers = ver:enum|ver:other\n");
    assert_eq!(ast.cmd("reload"), "rc=0");
    assert!(
        ast.block("logs")
            .contains("trust settings changed: cache emptied")
    );
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567"),
        "15551234567@pbx.example.org"
    );

    // The node goes away: cached answers still work; others fail within the deadline.
    node.kill();
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567"),
        "15551234567@pbx.example.org"
    );
    let t0 = Instant::now();
    assert_eq!(ast.value(&chan, "EMC_ENUM", "+15550000001"), "");
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "NODEFAIL");
    assert_eq!(ast.value("-", "EMC_ENUM", "+15550000001,sip,c"), "-1");
    assert_eq!(ast.value(&chan, "EMC_NVS", "ver:enum"), "");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_NVS_STATUS")), "NODEFAIL");
    assert!(
        ast.block("cli privateness show status")
            .contains("NOT reachable")
    );
    // The lookup waited with the channel under autoservice.
    let state = ast.cmd("state");
    assert!(!state.contains("autoservice_calls=0"), "{state}");

    // A node that accepts connections and never answers: bounded by the deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    conf(
        dir.path(),
        &silent_url,
        "lookup_timeout_ms = 300\ntimeout_ms = 200\n",
    );
    assert_eq!(ast.cmd("reload"), "rc=0");
    assert!(ast.block("logs").contains("node settings changed"));
    let t0 = Instant::now();
    assert_eq!(ast.value(&chan, "EMC_ENUM", "+15551234567"), "");
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "a silent node held the call {:?}",
        t0.elapsed()
    );

    // Loaded twice under another file name: declined with a clear line.
    let copy = dir.path().join("res_privateness_copy.so");
    std::fs::copy(&so, &copy).unwrap();
    assert!(
        ast.cmd(&format!("dlopen {}", copy.display()))
            .starts_with("registered")
    );
    assert_eq!(ast.cmd("load"), "rc=1");
    assert!(
        ast.block("logs")
            .contains("is already registered (is res_privateness loaded twice")
    );
    assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false");
    assert_eq!(
        ast.value("-", "EMC_ENUM", "+15551234567,sip,c"),
        "-1",
        "the first copy still answers"
    );

    // Unload: refused while a call holds the module, done after its hangup.
    assert!(ast.cmd("unload").starts_with("refused usecount=1"));
    assert!(ast.cmd("state").contains("usecount=1 datastores=1"));
    assert_eq!(ast.cmd(&format!("chan hangup {chan}")), "hung up");
    assert_eq!(ast.cmd("unload"), "rc=0");
    let state = ast.cmd("state");
    assert!(
        state.starts_with("functions=[] clis=[] apps=[] usecount=0 datastores=0 "),
        "{state}"
    );
    assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false");
    let logs = ast.block("logs");
    assert!(
        logs.contains("module thread stopped") && logs.contains("res_privateness unloaded"),
        "{logs}"
    );
    assert!(!logs.contains("panic"), "{logs}");
}

// ---- Lua hooks in the fake host ------------------------------------------------------------

/// The Lua `on_enum` hook ([hooks] script) inside EMC_ENUM_QUERY on the fake
/// host: it reorders and adds routes, rejects by caller with its own code
/// (EMC_ENUM_STATUS=REJECTED, EMC_REJECT_CODE/REASON), and a script that loops
/// or fails is stopped and the query answers as without it; `privateness
/// reload hooks` swaps the script and refuses one that does not compile; a
/// script that does not compile at load declines the module.
#[test]
fn fake_host_runs_the_on_enum_hook() {
    let (_node, url) = devnet();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hooks.lua");
    let v1 = r#"function on_enum(ctx)
  if ctx.caller == "+4940666" then return { reject = 403, reason = "Caller Blocked" } end
  if ctx.caller == "loop" then while true do end end
  if ctx.caller == "boom" then error("a bug") end
  local out = { "sip:gw@lcr.example" }
  for i = #ctx.candidates, 1, -1 do out[#out + 1] = ctx.candidates[i].uri end
  return out
end
"#;
    std::fs::write(&script, v1).unwrap();
    conf(dir.path(), &url, &format!("\n[hooks]\nscript = {}\ninstructions = 100000\n", script.display()));
    let mut ast = FakeAsterisk::start(dir.path());
    assert!(ast.cmd(&format!("dlopen {}", module().display())).starts_with("registered"));
    assert_eq!(ast.cmd("load"), "rc=0", "{}", ast.block("logs"));
    assert!(ast.block("logs").contains("hooks: [\"on_enum\"]"));
    let chan = ast.cmd("chan new").strip_prefix("chan=").unwrap().to_owned();
    let results = |ast: &mut FakeAsterisk, chan: &str| -> Vec<String> {
        let id = ast.value(chan, "EMC_ENUM_QUERY", "+15551234567");
        let n: usize = ast.value(chan, "EMC_ENUM_RESULT", &format!("{id},getnum")).parse().unwrap_or(0);
        (1..=n).map(|i| ast.value(chan, "EMC_ENUM_RESULT", &format!("{id},{i}"))).collect()
    };
    // Rerouted: the added gateway first, then the ENUM routes reversed.
    let r = results(&mut ast, &chan);
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(r[0], "gw@lcr.example");
    assert_eq!(r[2], "alice@sip.example.com", "{r:?}");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "FOUND");
    // Rejected by caller.
    ast.cmd(&format!("func {chan} CALLERID(num) +4940666"));
    assert_eq!(results(&mut ast, &chan), Vec::<String>::new());
    assert_eq!(ast.cmd(&format!("var {chan} EMC_ENUM_STATUS")), "REJECTED");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_REJECT_CODE")), "403");
    assert_eq!(ast.cmd(&format!("var {chan} EMC_REJECT_REASON")), "Caller Blocked");
    // A looping and a failing script: stopped, and the routes as found (3).
    for caller in ["loop", "boom"] {
        ast.cmd(&format!("func {chan} CALLERID(num) {caller}"));
        let t0 = Instant::now();
        let r = results(&mut ast, &chan);
        assert_eq!(r.len(), 3, "{caller}: {r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{caller} held the channel {:?}", t0.elapsed());
    }
    let logs = ast.block("logs");
    assert!(logs.contains("on_enum was stopped: it ran more than 100000 instructions") && logs.contains("hooks.lua:4: a bug"), "{logs}");
    // Reload: the new script keeps the routes; a broken one is refused.
    std::fs::write(&script, "function on_enum(ctx) return nil end").unwrap();
    assert!(ast.block("cli privateness reload hooks").contains("reloaded"));
    ast.cmd(&format!("func {chan} CALLERID(num) +4940666"));
    assert_eq!(results(&mut ast, &chan).len(), 3, "the new script does not reject");
    std::fs::write(&script, "function on_enum(ctx)\n  return {\nend\n").unwrap();
    let refused = ast.block("cli privateness reload hooks");
    assert!(refused.contains("does not compile") && refused.contains("hooks.lua:3:"), "{refused}");
    assert_eq!(ast.cmd(&format!("chan hangup {chan}")), "hung up");
    assert_eq!(ast.cmd("unload"), "rc=0");
    assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false", "the Lua states must not keep the module mapped");

    // A script that does not compile at load: declined, with its line.
    let mut ast = FakeAsterisk::start(dir.path());
    assert!(ast.cmd(&format!("dlopen {}", module().display())).starts_with("registered"));
    assert_eq!(ast.cmd("load"), "rc=1");
    let logs = ast.block("logs");
    assert!(logs.contains("hooks.lua:3:") && logs.contains("module declined"), "{logs}");
}

// ---- Skywire trunks in the fake host ----------------------------------------------------------

/// Skywire trunks hosted by the module (trunk_config): two fake Asterisks, each
/// with its relay on the module thread, trunked over a TCP carrier on loopback.
/// The trunk comes up; SIP crosses with its ports intact; `privateness show
/// trunks` counts it; a reload keeps unchanged trunks and restarts changed
/// ones; a secret file others can read declines the load, saying why; unload
/// frees the relay's ports and the module unmaps.
#[test]
fn fake_hosts_run_a_skywire_trunk() {
    use std::os::unix::fs::PermissionsExt;
    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (sip, rtp, carrier) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let side = |name: &str, me: &str, peer: &str, local: &str, owned: &str, role: String, secret: &Path| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let toml = d.join("trunk.toml");
        std::fs::write(
            &toml,
            format!(
                "[[trunk]]\nname = \"{name}\"\nme = \"{me}\"\npeer = \"{peer}\"\nsecret_file = \"{}\"\nlocal_address = \"{local}\"\npeer_address = \"{owned}\"\nsip_ports = [{sip}]\nrtp_ports = \"{rtp}-{rtp}\"\nkeepalive_ms = 500\n{role}\n",
                secret.display()
            ),
        )
        .unwrap();
        // The node is never asked: trunks need none of it. Side A also picks
        // its trunk with the Lua on_trunk hook (EMC_TRUNK).
        let hooks = if name == "to-b" {
            let script = d.join("hooks.lua");
            std::fs::write(&script, "function on_trunk(ctx)\n  if ctx.number:sub(1, 3) == \"+49\" then return ctx.trunks[1] end\n  if ctx.number == \"+1999\" then return \"nowhere\" end\nend\n").unwrap();
            format!("\n[hooks]\nscript = {}\n", script.display())
        } else {
            String::new()
        };
        std::fs::write(
            d.join("privateness.conf"),
            format!("[general]\nnode_url = http://127.0.0.1:9/\nrpc_user = {USER}\nrpc_password = {PASSWORD}\ntrunk_config = {}\n{hooks}", toml.display()),
        )
        .unwrap();
        let mut ast = FakeAsterisk::start(&d);
        assert!(ast.cmd(&format!("dlopen {}", module().display())).starts_with("registered"));
        (ast, toml)
    };
    let (mut b, _) = side("to-a", B, A, "127.77.30.2", "127.77.30.1", format!("listen = \"127.0.0.1:{carrier}\""), &secret);
    assert_eq!(b.cmd("load"), "rc=0", "{}", b.block("logs"));
    let (mut a, toml_a) = side("to-b", A, B, "127.77.31.1", "127.77.31.2", format!("dial = {{ carrier = \"tcp\", addr = \"127.0.0.1:{carrier}\" }}"), &secret);
    assert_eq!(a.cmd("load"), "rc=0", "{}", a.block("logs"));
    assert!(a.block("logs").contains("1 trunk(s) from"));

    // `privateness show trunks`: the row of a trunk, as words.
    let row = |ast: &mut FakeAsterisk, name: &str| -> Vec<String> {
        let text = ast.block("cli privateness show trunks");
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let t0 = Instant::now();
    while row(&mut a, "to-b")[1] != "up" || row(&mut b, "to-a")[1] != "up" {
        assert!(t0.elapsed() < Duration::from_secs(10), "the trunk did not come up:\n{}", a.block("cli privateness show trunks"));
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIP from PBX A to the peer's address arrives at PBX B from A's address and port.
    let pbx_a = std::net::UdpSocket::bind(("127.77.31.1", sip)).unwrap();
    let pbx_b = std::net::UdpSocket::bind(("127.77.30.2", sip)).unwrap();
    pbx_b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    pbx_a.send_to(b"OPTIONS sip:127.77.31.2 SIP/2.0\r\n\r\n", ("127.77.31.2", sip)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = pbx_b.recv_from(&mut buf).expect("the OPTIONS did not cross the trunk");
    assert_eq!((&buf[..n], from.to_string()), (&b"OPTIONS sip:127.77.31.2 SIP/2.0\r\n\r\n"[..], format!("127.77.30.1:{sip}")));
    let r = row(&mut a, "to-b");
    assert_eq!((r[2].as_str(), r[4].as_str()), ("1", "1"), "sessions 1, SIP out 1: {r:?}");
    assert_eq!(row(&mut b, "to-a")[5], "1", "SIP in at B");

    // EMC_TRUNK: the on_trunk hook's pick by number; nothing for others, or for a name that is no trunk.
    assert_eq!(a.value("-", "EMC_TRUNK", "+4930123456"), "to-b");
    assert_eq!(a.value("-", "EMC_TRUNK", "+15551234567"), "");
    assert_eq!(a.value("-", "EMC_TRUNK", "+1999"), "");
    assert!(a.block("logs").contains("no trunk is named \"nowhere\""));
    assert_eq!(b.value("-", "EMC_TRUNK", "+4930123456"), "", "no [hooks] on side B");

    // Reload: unchanged trunks keep their carrier; a changed file restarts them.
    assert_eq!(a.cmd("reload"), "rc=0");
    assert!(a.block("logs").contains("1 trunk(s) kept"));
    assert_eq!(row(&mut a, "to-b")[2], "1", "an unchanged reload must not restart the trunk");
    let changed = std::fs::read_to_string(&toml_a).unwrap().replace("keepalive_ms = 500", "keepalive_ms = 600");
    std::fs::write(&toml_a, changed).unwrap();
    assert_eq!(a.cmd("reload"), "rc=0");
    let logs = a.block("logs");
    assert!(logs.contains("1 trunk(s) from"), "{logs}");
    let t0 = Instant::now();
    while row(&mut a, "to-b")[1] != "up" {
        assert!(t0.elapsed() < Duration::from_secs(10), "the restarted trunk did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A secret file others can read: the load is declined, naming the fix.
    let loose = dir.path().join("loose-secret");
    std::fs::write(&loose, "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut c, _) = side("loose", A, B, "127.77.32.1", "127.77.32.2", "listen = \"127.0.0.1:1\"".into(), &loose);
    assert_eq!(c.cmd("load"), "rc=1");
    let logs = c.block("logs");
    assert!(logs.contains("chmod 600") && logs.contains("module declined"), "{logs}");

    // Unload: the relay's ports are free again and the module unmaps.
    for ast in [&mut a, &mut b] {
        assert_eq!(ast.cmd("unload"), "rc=0");
        assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false");
        assert!(!ast.block("logs").contains("panic"));
    }
    std::net::UdpSocket::bind(("127.77.31.2", sip)).expect("unload left the relay's SIP port bound");
}

// ---- RANDPAY in the fake host ---------------------------------------------------------------

const RP_TARIFF: &str = "+ 0.01 risk=2 interval=10 grace=3";
const RP_INTERVAL: f64 = 10.0;
const RP_GRACE: f64 = 3.0;

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One side: its config dir with privateness.conf, the module loaded.
fn randpay_side(dir: &Path, role: &str, url: &str, randpay: &str) -> FakeAsterisk {
    let d = dir.join(role);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("privateness.conf"),
        format!(
            "[general]\nnode_url = {url}\nrpc_user = rp\nrpc_password = rp-password\n\n[randpay]\nrole = {role}\nwallet = {role}\nledger = {}\n{randpay}",
            d.join("ledger.db").display()
        ),
    )
    .unwrap();
    let mut ast = FakeAsterisk::start(&d);
    assert!(ast.cmd(&format!("dlopen {}", module().display())).starts_with("registered"));
    assert_eq!(ast.cmd("load"), "rc=0", "{}", ast.block("logs"));
    ast
}

/// `randpay show calls` rows: Call-ID → the Paid (payee) or Sent (payer) column.
fn randpay_calls(ast: &mut FakeAsterisk) -> std::collections::HashMap<String, u32> {
    let text = ast.block("cli randpay show calls");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 6 && w[0].contains('@')).then(|| (w[0].to_owned(), w[3].parse().unwrap()))
        })
        .collect()
}

/// `randpay show ledger CALL-ID`: (tickets, end reason).
fn randpay_ledger(ast: &mut FakeAsterisk, call_id: &str) -> (u32, String) {
    let text = ast.block(&format!("cli randpay show ledger {call_id}"));
    let row = text.lines().find(|l| l.starts_with(call_id)).unwrap_or_else(|| panic!("{call_id} not in the ledger:\n{text}"));
    let w: Vec<&str> = row.split_whitespace().collect();
    (w[3].parse().unwrap(), w[7..].join(" "))
}

/// RANDPAY between two fake Asterisks on the HTTP side channel (the transport
/// for Asterisk, docs/asterisk-randpay-notes.md): the payer pays before its
/// INVITE and then every interval; `RandpayRequire` lets paid calls through
/// and refuses others with 402 (PJSIPHangup); a payer that stops is hung up
/// (cause 29) within interval + grace; replays get 481, forged tickets 402;
/// both ledgers show the tickets; unload waits for metered calls.
#[test]
fn fake_hosts_meter_a_call_with_randpay() {
    let (_devnet, url) = ness_tests::randpay_devnet("rp", "rp-password");
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut payee = randpay_side(
        dir.path(),
        "payee",
        &url,
        &format!("tariff = {RP_TARIFF}\nside_channel = 127.0.0.1:{port}\nside_peers = 127.0.0.1\n"),
    );
    let mut payer = randpay_side(dir.path(), "payer", &url, &format!("payee_url = http://127.0.0.1:{port}\nmax_price = 0.05\n"));
    let logs = payee.block("logs");
    assert!(logs.contains(&format!("randpay: HTTP side channel on 127.0.0.1:{port}")) && logs.contains("randpay: payee ready"), "{logs}");

    // A call nobody paid for: 402 on the wire (PJSIPHangup), status UNPAID.
    let c = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {c} CHANNEL(pjsip,call-id) unpaid-1@127.0.0.1"));
    assert!(payee.cmd(&format!("exec {c} RandpayRequire")).starts_with("rc=-1"));
    assert_eq!(payee.cmd(&format!("var {c} RANDPAY_STATUS")), "UNPAID");
    assert!(payee.cmd(&format!("chan show {c}")).contains(r#"execs=["PJSIPHangup(402)"]"#));
    payee.cmd(&format!("chan hangup {c}"));

    // Two calls, paid before their INVITE: one on PJSIP (Call-ID and the
    // Randpay-Ticket header), one on Local channels (RANDPAY_CALLID).
    let (held, cut) = ("held-1@127.0.0.1", "cut-1@127.0.0.1");
    let q1 = payer.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payer.cmd(&format!("func {q1} CHANNEL(pjsip,call-id) {held}"));
    let (rc, ticket, _) = payer.read(&q1, "RANDPAY", "ticket,+4930123456");
    assert_eq!(rc, 0, "{}", payer.block("logs"));
    assert!(ticket.starts_with("seq=0;ticket=\""), "{ticket}");
    assert_eq!(payer.cmd(&format!("var {q1} RANDPAY_STATUS")), "PAID");
    let q2 = payer.cmd("chan new Local +4930999").replace("chan=", "");
    payer.cmd(&format!("set {q2} RANDPAY_CALLID {cut}"));
    assert_eq!(payer.read(&q2, "RANDPAY", "ticket,+4930999").0, 0);

    let p1 = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {p1} CHANNEL(pjsip,call-id) {held}"));
    payee.cmd(&format!("func {p1} PJSIP_HEADER(read,Randpay-Ticket) {ticket}"));
    assert!(payee.cmd(&format!("exec {p1} RandpayRequire")).starts_with("rc=0"), "{}", payee.block("logs"));
    assert_eq!(payee.cmd(&format!("var {p1} RANDPAY_STATUS")), "PAID");
    let p2 = payee.cmd("chan new Local +4930999").replace("chan=", "");
    payee.cmd(&format!("set {p2} RANDPAY_CALLID {cut}"));
    assert!(payee.cmd(&format!("exec {p2} RandpayRequire")).starts_with("rc=0"));
    // Unload is refused while metered calls are up.
    assert!(payee.cmd("unload").starts_with("refused"));
    payee.cmd(&format!("chan answer {p1}"));
    payee.cmd(&format!("chan answer {p2}"));
    let answered = Instant::now();

    // 12 s in: the second interval of both calls is paid, on both sides.
    std::thread::sleep(Duration::from_millis(12_000));
    let paid = randpay_calls(&mut payee);
    assert_eq!((paid.get(held), paid.get(cut)), (Some(&2), Some(&2)), "{paid:?}\n{}", payee.block("logs"));
    let sent = randpay_calls(&mut payer);
    assert_eq!((sent.get(held), sent.get(cut)), (Some(&2), Some(&2)), "{sent:?}\n{}", payer.block("logs"));
    assert_eq!(payee.value(&p1, "RANDPAY", "paid"), "2");

    // The renter hangs up its side of the second call: no more tickets. The
    // payee hangs the call up when interval 2 is late (2T+G after the answer).
    let stopped = Instant::now();
    payer.cmd(&format!("chan hangup {q2}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !payee.cmd(&format!("chan show {p2}")).contains("softhangup=29") {
        assert!(Instant::now() < deadline, "never hung up: {}", payee.block("logs"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (since_answer, since_stop) = (answered.elapsed().as_secs_f64(), stopped.elapsed().as_secs_f64());
    assert!(since_answer >= 2.0 * RP_INTERVAL + RP_GRACE - 0.5, "hung up {since_answer:.1} s after the answer: too early");
    assert!(since_stop <= RP_INTERVAL + RP_GRACE + 1.5, "hung up {since_stop:.1} s after the payer stopped");
    assert!(payee.cmd(&format!("chan show {p1}")).contains("softhangup=none"), "the paying call goes on");
    assert!(payee.block("logs").contains(&format!("randpay: {cut}: no ticket for interval 2: hanging up")));
    payee.cmd(&format!("chan hangup {p2}"));

    // The held call pays its third interval, then both sides hang up.
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(randpay_calls(&mut payee).get(held), Some(&3));
    payer.cmd(&format!("chan hangup {q1}"));
    payee.cmd(&format!("chan hangup {p1}"));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(randpay_ledger(&mut payee, held), (3, "hangup".into()));
    assert_eq!(randpay_ledger(&mut payer, held), (3, "hangup".into()));
    assert_eq!(randpay_ledger(&mut payee, cut), (2, "unpaid".into()));
    // (unpaid-1 stays known for a retry with a ticket until SETUP_LIMIT.)
    let left = randpay_calls(&mut payee);
    assert!(!left.contains_key(held) && !left.contains_key(cut), "{left:?}");
    assert!(randpay_calls(&mut payer).is_empty());

    // A replayed INVITE (an ended Call-ID, even with its paid ticket): 481.
    let r = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {r} CHANNEL(pjsip,call-id) {held}"));
    payee.cmd(&format!("func {r} PJSIP_HEADER(read,Randpay-Ticket) {ticket}"));
    assert!(payee.cmd(&format!("exec {r} RandpayRequire")).starts_with("rc=-1"));
    assert_eq!(payee.cmd(&format!("var {r} RANDPAY_STATUS")), "REFUSED");
    assert!(payee.cmd(&format!("chan show {r}")).contains(r#"execs=["PJSIPHangup(481)"]"#));
    payee.cmd(&format!("chan hangup {r}"));
    // Another call's ticket, presented for a new Call-ID: not counted, 402.
    let f = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {f} CHANNEL(pjsip,call-id) forged-1@127.0.0.1"));
    payee.cmd(&format!("func {f} PJSIP_HEADER(read,Randpay-Ticket) {ticket}"));
    assert!(payee.cmd(&format!("exec {f} RandpayRequire")).starts_with("rc=-1"));
    assert_eq!(payee.cmd(&format!("var {f} RANDPAY_STATUS")), "UNPAID");
    payee.cmd(&format!("chan hangup {f}"));
    assert_eq!(randpay_ledger(&mut payee, held), (3, "hangup".into()), "the replay changed nothing");

    // Everything metered has hung up: both unload and unmap.
    for (name, ast) in [("payee", &mut payee), ("payer", &mut payer)] {
        assert_eq!(ast.cmd("unload"), "rc=0", "{name}: {}", ast.block("logs"));
        assert_eq!(ast.cmd("dlclose"), "rc=0 unregistered=true mapped=false", "{name}");
        let logs = ast.block("logs");
        assert!(!logs.contains("panic"), "{name}: {logs}");
    }
}

/// The `tariff(ctx)` Lua hook in the Asterisk payee ([hooks] in
/// privateness.conf): `RandpayRequire` prices a SIP-only call by it, with the
/// caller's CALLERID(num); a payer's side-channel request is priced by it too
/// (no caller there), and the INVITE that follows keeps that price instead of
/// being refused as a mismatch; `privateness reload hooks` prices the next call.
#[test]
fn fake_host_prices_randpay_calls_with_the_tariff_hook() {
    let (_devnet, url) = ness_tests::randpay_devnet("rp", "rp-password");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tariff.lua");
    let write = |side_price: &str| {
        std::fs::write(&script, format!(
            "function tariff(ctx)\n  if ctx.caller == '+4940111' then return {{ price = '0.002' }} end\n  if ctx.caller == '' then return {{ price = '{side_price}', risk = 4 }} end\nend\n"
        ))
        .unwrap()
    };
    write("0.003");
    let port = free_tcp_port();
    let mut payee = randpay_side(
        dir.path(),
        "payee",
        &url,
        &format!("tariff = {RP_TARIFF}\nside_channel = 127.0.0.1:{port}\nside_peers = 127.0.0.1\n\n[hooks]\nscript = {}\n", script.display()),
    );
    let mut payer = randpay_side(dir.path(), "payer", &url, &format!("payee_url = http://127.0.0.1:{port}\nmax_price = 0.05\n"));
    let ledger = dir.path().join("payee/ledger.db");

    // A SIP-only call: challenged at the caller's price, the table's risk.
    let c = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {c} CHANNEL(pjsip,call-id) hook-sip@127.0.0.1"));
    payee.cmd(&format!("func {c} CALLERID(num) +4940111"));
    assert!(payee.cmd(&format!("exec {c} RandpayRequire")).starts_with("rc=-1"));
    assert_eq!(payee.cmd(&format!("var {c} RANDPAY_STATUS")), "UNPAID");
    assert_eq!(ness_tests::ledger_price(&ledger, "hook-sip@127.0.0.1"), (2_000, 2), "{}", payee.block("logs"));
    payee.cmd(&format!("chan hangup {c}"));

    // Paid first on the side channel: priced there; the INVITE keeps it.
    let pay = |payer: &mut FakeAsterisk, call: &str| {
        let q = payer.cmd("chan new PJSIP +4930123456").replace("chan=", "");
        payer.cmd(&format!("func {q} CHANNEL(pjsip,call-id) {call}"));
        let (rc, ticket, _) = payer.read(&q, "RANDPAY", "ticket,+4930123456");
        assert_eq!(rc, 0, "{}", payer.block("logs"));
        (q, ticket)
    };
    let (q, ticket) = pay(&mut payer, "hook-side@127.0.0.1");
    assert_eq!(ness_tests::ledger_price(&ledger, "hook-side@127.0.0.1"), (3_000, 4));
    let p = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {p} CHANNEL(pjsip,call-id) hook-side@127.0.0.1"));
    payee.cmd(&format!("func {p} CALLERID(num) +4940111"));
    payee.cmd(&format!("func {p} PJSIP_HEADER(read,Randpay-Ticket) {ticket}"));
    assert!(payee.cmd(&format!("exec {p} RandpayRequire")).starts_with("rc=0"), "{}", payee.block("logs"));
    assert_eq!(ness_tests::ledger_price(&ledger, "hook-side@127.0.0.1"), (3_000, 4), "priced once");

    // Reloaded: the next call's price is the new script's.
    write("0.005");
    assert!(payee.block("cli privateness reload hooks").contains("reloaded"));
    let (q2, _) = pay(&mut payer, "hook-reloaded@127.0.0.1");
    assert_eq!(ness_tests::ledger_price(&ledger, "hook-reloaded@127.0.0.1"), (5_000, 4));
    for chan in [&q, &q2] {
        payer.cmd(&format!("chan hangup {chan}"));
    }
    payee.cmd(&format!("chan hangup {p}"));
    std::thread::sleep(Duration::from_millis(500));
    for (name, ast) in [("payee", &mut payee), ("payer", &mut payer)] {
        assert_eq!(ast.cmd("unload"), "rc=0", "{name}: {}", ast.block("logs"));
        assert!(!ast.block("logs").contains("panic"), "{name}");
    }
}

/// The other mixed pair: a real Kamailio with the shipped randpay-payer.cfg and
/// `randpay_payee_url` pays res_privateness.so (in the fake host) as the payee.
/// The payer pays interval 0 on the Asterisk's side channel before its INVITE
/// leaves, with the ticket in the INVITE (a SIPp UAS stands in for the
/// Asterisk's PJSIP endpoint and hands the Call-ID and `Randpay-Ticket` header
/// to `RandpayRequire`, as chan_pjsip would); then it polls for each next
/// challenge. Both ledgers agree at the end.
#[test]
fn kamailio_payer_pays_an_asterisk_payee_on_its_side_channel() {
    let sipp = ness_tests::require_tool("sipp", "sip-tester");
    let (_devnet, url) = ness_tests::randpay_devnet("rp", "rp-password");
    let dir = tempfile::tempdir().unwrap();
    let udp = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (pjsip_port, payer_port, side_port) = (udp(), udp(), free_tcp_port());
    let mut payee = randpay_side(
        dir.path(),
        "payee",
        &url,
        &format!("tariff = {RP_TARIFF}\nside_channel = 127.0.0.1:{side_port}\nside_peers = 127.0.0.1\n"),
    );
    let pjsip_trace = dir.path().join("pjsip.trace");
    let mut pjsip = Proc::start(
        sipp.clone(),
        &[
            "-sf", repo().join("tests/sipp/uas_answer.xml").to_str().unwrap(), "-i", "127.0.0.1", "-p", &pjsip_port.to_string(),
            "-nostdin", "-trace_msg", "-message_file", pjsip_trace.to_str().unwrap(),
        ],
        &[],
    );
    let mut payer = ness_tests::KamailioPbx::start(
        "randpay-payer.cfg",
        "payer",
        payer_port,
        (&url, "rp", "rp-password"),
        dir.path(),
        &[format!("PAYEE=\"sip:127.0.0.1:{pjsip_port}\""), format!("PAYEE_URL=\"http://127.0.0.1:{side_port}\"")],
    );

    let call_id = "kx-1@127.0.0.1";
    let trace = dir.path().join("caller.trace");
    let mut caller = Proc::start(
        sipp,
        &[
            "-sf", repo().join("tests/sipp/uac_hold.xml").to_str().unwrap(), &format!("127.0.0.1:{payer_port}"),
            "-s", "+4930123456", "-m", "1", "-i", "127.0.0.1", "-p", &udp().to_string(), "-cid_str", call_id,
            "-d", "20000", "-timeout", "60", "-timeout_error", "-nostdin", "-trace_msg", "-message_file", trace.to_str().unwrap(),
        ],
        &[],
    );
    // The INVITE reaches "PJSIP" with the ticket the payer bought on the side channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ticket = loop {
        let text = std::fs::read_to_string(&pjsip_trace).unwrap_or_default();
        if let Some(t) = text.lines().find_map(|l| l.trim().strip_prefix("Randpay-Ticket:")) {
            break t.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no INVITE with a Randpay-Ticket reached the payee:\n{text}\n{}", payer.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ticket.starts_with("seq=0;"), "{ticket}");
    // chan_pjsip's part: the channel with the INVITE's Call-ID and header.
    let p = payee.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payee.cmd(&format!("func {p} CHANNEL(pjsip,call-id) {call_id}"));
    payee.cmd(&format!("func {p} PJSIP_HEADER(read,Randpay-Ticket) {ticket}"));
    assert!(payee.cmd(&format!("exec {p} RandpayRequire")).starts_with("rc=0"), "{}", payee.block("logs"));
    assert_eq!(payee.cmd(&format!("var {p} RANDPAY_STATUS")), "PAID");
    payee.cmd(&format!("chan answer {p}"));
    let answered = Instant::now();

    // 12 s in: interval 1 was challenged at 7.5 s, fetched by the payer's poll and paid.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(answered.elapsed()));
    assert_eq!(randpay_calls(&mut payee).get(call_id), Some(&2), "{}", payee.block("logs"));
    assert_eq!(payer.paid_intervals().get(call_id), Some(&2), "the payer's side-channel call");
    let status = caller.wait_exit(Duration::from_secs(40)).expect("the call did not end");
    assert!(status.success(), "the call failed or got an INFO:\n{}", std::fs::read_to_string(&trace).unwrap_or_default());
    payee.cmd(&format!("chan hangup {p}"));
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(randpay_ledger(&mut payee, call_id), (3, "hangup".into()));
    let l = payer.ledger(call_id);
    assert_eq!(l["tickets"], "3", "{l:?}");
    assert!(payer.paid_intervals().is_empty(), "the payer still pays: {:?}", payer.paid_intervals());
    let logs = payee.block("logs") + &payer.log();
    assert!(!logs.contains("panic"), "{logs}");
    pjsip.kill();
}

/// A mixed pair: res_privateness.so (in the fake host) as the payer, a real
/// Kamailio with the shipped randpay-payee.cfg and `randpay_side_channel` as
/// the payee. The payer pays interval 0 for a Call-ID before the INVITE (what
/// Dial's b() handler does); the INVITE (SIPp, same Call-ID) then passes the
/// Kamailio payee with no ticket header, no INFO is sent on the call (SIPp
/// fails on any), and the payer pays each next interval on the side channel.
#[test]
fn asterisk_payer_pays_a_kamailio_payee_on_its_side_channel() {
    let sipp = ness_tests::require_tool("sipp", "sip-tester");
    let (_devnet, url) = ness_tests::randpay_devnet("rp", "rp-password");
    let dir = tempfile::tempdir().unwrap();
    let udp = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (callee_port, payee_port, side_port) = (udp(), udp(), free_tcp_port());
    let mut callee = Proc::start(
        sipp.clone(),
        &["-sf", repo().join("tests/sipp/uas_answer.xml").to_str().unwrap(), "-i", "127.0.0.1", "-p", &callee_port.to_string(), "-nostdin"],
        &[],
    );
    let payee = ness_tests::KamailioPbx::start(
        "randpay-payee.cfg",
        "payee",
        payee_port,
        (&url, "rp", "rp-password"),
        dir.path(),
        &[
            format!("TARGET=\"sip:127.0.0.1:{callee_port}\""),
            format!("TARIFF=\"{RP_TARIFF}\""),
            format!("SIDE_CHANNEL=\"127.0.0.1:{side_port}\""),
            "SIDE_PEERS=\"127.0.0.1\"".to_owned(),
        ],
    );
    let mut payer = randpay_side(dir.path(), "payer", &url, &format!("payee_url = http://127.0.0.1:{side_port}\n"));

    let call_id = "ax-1@127.0.0.1";
    let q = payer.cmd("chan new PJSIP +4930123456").replace("chan=", "");
    payer.cmd(&format!("func {q} CHANNEL(pjsip,call-id) {call_id}"));
    let (rc, ticket, _) = payer.read(&q, "RANDPAY", "ticket,+4930123456");
    assert_eq!(rc, 0, "{}", payer.block("logs"));
    assert!(ticket.starts_with("seq=0;"), "{ticket}");

    let trace = dir.path().join("caller.trace");
    let started = Instant::now();
    let mut caller = Proc::start(
        sipp,
        &[
            "-sf", repo().join("tests/sipp/uac_hold.xml").to_str().unwrap(), &format!("127.0.0.1:{payee_port}"),
            "-s", "+4930123456", "-m", "1", "-i", "127.0.0.1", "-p", &udp().to_string(), "-cid_str", call_id,
            "-d", "24000", "-timeout", "60", "-timeout_error", "-nostdin", "-trace_msg", "-message_file", trace.to_str().unwrap(),
        ],
        &[],
    );
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    assert_eq!(payee.paid_intervals().get(call_id), Some(&2), "12 s into the call");
    assert_eq!(randpay_calls(&mut payer).get(call_id), Some(&2));
    let status = caller.wait_exit(Duration::from_secs(40)).expect("the call did not end");
    assert!(status.success(), "the paid call was cut, failed or got an INFO:\n{}", std::fs::read_to_string(&trace).unwrap_or_default());
    std::thread::sleep(Duration::from_millis(500));
    let l = payee.ledger(call_id);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("3", "bye"), "{l:?}");
    payer.cmd(&format!("chan hangup {q}"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(randpay_ledger(&mut payer, call_id), (3, "hangup".into()));
    callee.kill();
}

// ---- a real Asterisk ---------------------------------------------------------------------

struct RealAsterisk {
    proc: Proc,
    binary: PathBuf,
    conf: PathBuf,
    run_dir: PathBuf,
}

impl RealAsterisk {
    fn cli(&self, command: &str) -> String {
        let out = run(
            &self.binary,
            &["-C", &self.conf.to_string_lossy(), "-rx", command],
            &[],
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pid(&self) -> u32 {
        std::fs::read_to_string(self.run_dir.join("asterisk.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn mapped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid()))
            .unwrap_or_default()
            .contains("res_privateness")
    }
}

/// A private Asterisk under `base`: only the modules the test needs, nothing
/// listening on the network, control socket in `base/run`.
fn start_asterisk(prefix: &Path, base: &Path, node_url: &str) -> RealAsterisk {
    start_asterisk_with(prefix, base, node_url, "", "", None)
}

/// As `start_asterisk`, with more lines for privateness.conf and extensions.conf.
/// The modules a PJSIP trunk needs (with `pjsip` given to [`start_asterisk_with`]).
const PJSIP_MODULES: &[&str] = &[
    "res_pjproject.so", "res_sorcery_config.so", "res_sorcery_memory.so", "res_sorcery_astdb.so", "res_pjsip.so",
    "res_pjsip_session.so", "res_pjsip_pubsub.so", "chan_pjsip.so", "res_pjsip_header_funcs.so", "res_pjsip_sdp_rtp.so", "res_rtp_asterisk.so",
    "res_pjsip_endpoint_identifier_ip.so", "func_channel.so", "func_hangupcause.so", "app_stack.so", "codec_ulaw.so",
];

fn start_asterisk_with(prefix: &Path, base: &Path, node_url: &str, privateness_extra: &str, dialplan_extra: &str, pjsip: Option<&str>) -> RealAsterisk {
    let (etc, mods, run_dir) = (base.join("etc"), base.join("mods"), base.join("run"));
    for d in [
        &etc,
        &mods,
        &run_dir.join("db"),
        &run_dir.join("spool"),
        &run_dir.join("log"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    let stock = prefix.join("lib/asterisk/modules");
    for m in std::fs::read_dir(&stock).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (is ASTERISK_PREFIX an installed Asterisk?)",
            stock.display()
        )
    }) {
        let m = m.unwrap().path();
        std::os::unix::fs::symlink(&m, mods.join(m.file_name().unwrap())).unwrap();
    }
    std::fs::copy(module(), mods.join("res_privateness.so")).unwrap();
    let var = prefix.join("var/lib/asterisk");
    std::fs::write(
        etc.join("asterisk.conf"),
        format!(
            "[directories]\nastetcdir => {e}\nastmoddir => {m}\nastvarlibdir => {v}\nastdbdir => {r}/db\nastkeydir => {v}\nastdatadir => {v}\nastagidir => {v}/agi-bin\nastspooldir => {r}/spool\nastrundir => {r}\nastlogdir => {r}/log\nastsbindir => {p}/sbin\n[options]\nverbose = 3\ndebug = 0\nnocolor = yes\n",
            e = etc.display(),
            m = mods.display(),
            v = var.display(),
            r = run_dir.display(),
            p = prefix.display()
        ),
    )
    .unwrap();
    // Only what the test needs: no channel drivers (unless a PJSIP trunk is asked
    // for, on loopback), so nothing else listens on the network.
    let mut modules = "[modules]\nautoload = no\nload => pbx_config.so\nload => res_clioriginate.so\nload => app_system.so\nload => app_dial.so\nload => app_exec.so\nload => app_while.so\nload => app_verbose.so\nload => bridge_simple.so\nload => func_strings.so\n".to_owned();
    if let Some(conf) = pjsip {
        std::fs::write(etc.join("pjsip.conf"), conf).unwrap();
        for m in PJSIP_MODULES {
            modules.push_str(&format!("load => {m}\n"));
        }
    }
    modules.push_str("load => res_privateness.so\n");
    std::fs::write(etc.join("modules.conf"), modules).unwrap();
    std::fs::write(
        etc.join("logger.conf"),
        "[general]\ndateformat = %F %T\n[logfiles]\nmessages.log => notice,warning,error,verbose\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("privateness.conf"),
        format!("[general]\nnode_url = {node_url}\nrpc_user = {USER}\nrpc_password = {PASSWORD}\n{privateness_extra}"),
    )
    .unwrap();
    let out = run_dir.join("out.txt");
    std::fs::write(
        etc.join("extensions.conf"),
        format!(
            r#"[general]
static = yes
writeprotect = yes

#include "{shipped}"

; The shipped [emc-outbound] dials Local/<user>@<host> here (EMC_DIAL_PREFIX=Local/):
; a "host" context answers and says who was dialled.
[pbx.example.org]
exten => _[0-9a-z+].,1,System(echo "DIALED ${{EXTEN}}@${{CONTEXT}}" >> {out})
 same => n,Answer()
 same => n,Hangup()

[fallback]
exten => _[0-9+].,1,System(echo "FALLBACK ${{EXTEN}}" >> {out})
 same => n,Answer()
 same => n,Hangup()

[emc]
exten => s,1,Set(BEST=${{EMC_ENUM(+15551234567)}})
 same => n,Set(ST=${{EMC_ENUM_STATUS}})
 same => n,Set(COUNT=${{EMC_ENUM(+15551234567,sip,c)}})
 same => n,Set(SECOND=${{EMC_ENUM(+15551234567,sip,,2)}})
 same => n,Set(NONE=${{EMC_ENUM(+15559999999)}}:${{EMC_ENUM_STATUS}})
 same => n,Set(Q=${{EMC_ENUM_QUERY(+15551234567)}})
 same => n,Set(QN=${{EMC_ENUM_RESULT(${{Q}},getnum)}})
 same => n,Set(Q3=${{EMC_ENUM_RESULT(${{Q}},3)}})
 same => n,Set(NVS=${{EMC_NVS(dns:asterisk-test.emc)}})
 same => n,System(echo "BEST=${{BEST}} ST=${{ST}} COUNT=${{COUNT}} SECOND=${{SECOND}} NONE=${{NONE}} QN=${{QN}} Q3=${{Q3}} NVS=${{NVS}}" >> {out})
 same => n,Hangup()

; A call that uses the module and stays up for a while.
exten => hold,1,Set(X=${{EMC_ENUM(+15551234567)}})
 same => n,System(echo "HELD X=${{X}}" >> {out})
 same => n,Wait(3)
 same => n,Hangup()

; Many calls at once, each resolving another number (misses), for the storm below.
[storm]
exten => _X.,1,Set(R=${{EMC_ENUM(+${{EXTEN}})}}:${{EMC_ENUM_STATUS}})
 same => n,System(echo "STORM ${{EXTEN}} ${{R}}" >> {storm})
 same => n,Hangup()

{dialplan_extra}
"#,
            out = out.display(),
            storm = run_dir.join("storm.txt").display(),
            shipped = repo().join("dialplan/asterisk/extensions.conf").display()
        ),
    )
    .unwrap();
    let binary = prefix.join("sbin/asterisk");
    let conf = etc.join("asterisk.conf");
    let proc = Proc::start(
        binary.clone(),
        &["-C", &conf.to_string_lossy(), "-f", "-n", "-vvv"],
        &[],
    );
    let a = RealAsterisk {
        proc,
        binary,
        conf,
        run_dir,
    };
    let t0 = Instant::now();
    while !a.cli("core waitfullybooted").contains("fully booted") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Asterisk did not boot; see {}",
            base.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    a
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            // The Asterisk that writes `path` (its run dir), or each of the
            // Asterisks under it (`<base>/<name>/run`, the two-Asterisk tests).
            let dir = path.parent().unwrap();
            let mut logs = vec![dir.join("log/messages.log")];
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                logs.push(e.path().join("run/log/messages.log"));
            }
            let mut tails = String::new();
            for log in logs.iter().filter(|l| l.exists()) {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                tails.push_str(&format!("\n--- {} ends:\n{}", log.display(), tail.join("\n")));
            }
            panic!(
                "the dialplan did not write {} ({} lines so far: {lines:?}); Asterisk's log:{tails}",
                path.display(),
                lines.len(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_asterisk_runs_the_dialplan_and_unloads_cleanly() {
    let Some(prefix) = std::env::var_os("ASTERISK_PREFIX").map(PathBuf::from) else {
        // Straight to stderr: the test harness captures eprintln!, and this must be seen.
        let _ = std::io::stderr().write_all(
            "\n************************************************************************\n\
             * NOT RUN: real_asterisk_runs_the_dialplan_and_unloads_cleanly          *\n\
             * Set ASTERISK_PREFIX to an installed Asterisk 20 or 22 (with its       *\n\
             * modules pbx_config, res_clioriginate, app_system, app_dial, app_exec, *\n\
             * app_while, app_verbose, bridge_simple, func_strings) to               *\n\
             * run res_privateness.so inside it. The fake-host test ran instead.     *\n\
             ************************************************************************\n"
                .as_bytes(),
        );
        return;
    };
    let (_node, url) = devnet();
    let client = NvsClient::new(&NodeConfig::new(
        &url,
        Credentials::UserPassword {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    ))
    .unwrap();
    block_on(client.name_new(
        "dns:asterisk-test.emc",
        &NameValue::from("hello-from-nvs"),
        30,
        None,
    ))
    .unwrap();

    let base = tempfile::tempdir().unwrap();
    let mut a = start_asterisk(&prefix, base.path(), &url);
    let version = a.cli("core show version");
    assert!(
        version.starts_with("Asterisk 20.") || version.starts_with("Asterisk 22."),
        "{version}"
    );
    assert!(
        a.cli("module show like privateness")
            .contains("res_privateness.so"),
        "not loaded at boot"
    );

    let out = a.run_dir.join("out.txt");
    a.cli("channel originate Local/s@emc application Wait 1");
    let lines = wait_for_lines(&out, 1);
    assert_eq!(
        lines[0],
        "BEST=15551234567@pbx.example.org ST=FOUND COUNT=3 SECOND=alice@sip.example.com NONE=:NOTFOUND QN=3 \
         Q3=+15551234567@backup.example.net NVS=hello-from-nvs"
    );
    let eval = a.cli("dialplan eval function EMC_ENUM(+15551234567,sip,u)");
    assert!(
        eval.contains("Result: sip:15551234567@pbx.example.org"),
        "{eval}"
    );
    let status = a.cli("privateness show status");
    assert!(status.contains("reachable, block"), "{status}");
    assert!(a.cli("privateness lookup +15551234567").contains("E2U+sip"));
    assert!(
        a.cli("core show function EMC_ENUM")
            .contains("EMC_ENUM(number[,service[,options[,record]]])")
    );

    // The shipped dialplan: an ENUM route answers; a number without records, or whose
    // routes do not answer (pbx.example.de does not exist here), goes to the fallback.
    a.cli("dialplan set global EMC_DIAL_PREFIX Local/");
    a.cli("dialplan set global EMC_FALLBACK_PREFIX Local/");
    a.cli("dialplan set global EMC_FALLBACK_SUFFIX @fallback");
    for (i, (number, want)) in [
        ("+15551234567", "DIALED 15551234567@pbx.example.org"),
        ("+15559999999", "FALLBACK +15559999999"),
        ("+4930123456", "FALLBACK +4930123456"),
        ("004930123456", "FALLBACK +4930123456"),
    ]
    .iter()
    .enumerate()
    {
        a.cli(&format!("channel originate Local/{number}@emc-outbound application Wait 2"));
        let lines = wait_for_lines(&out, 2 + i);
        assert_eq!(lines[1 + i], *want, "calling {number}");
    }
    let log = std::fs::read_to_string(a.run_dir.join("log/messages.log")).unwrap();
    assert!(log.contains("+4930123456: no ENUM route answered (FOUND) - trying the fallback trunk"), "{log}");

    // A storm: 30 calls resolving at once while the module is reloaded over and over.
    let storm = a.run_dir.join("storm.txt");
    let conf_file = a.conf.parent().unwrap().join("privateness.conf");
    let base_conf = std::fs::read_to_string(&conf_file).unwrap();
    for i in 0..30 {
        a.cli(&format!("channel originate Local/1555000{:04}@storm application Wait 1", 9000 + i));
        if i % 3 == 0 {
            std::fs::write(&conf_file, format!("{base_conf}negative_ttl = {}\n", 10 + i)).unwrap();
            a.cli("module reload res_privateness.so");
        }
    }
    std::fs::write(&conf_file, &base_conf).unwrap();
    let lines = wait_for_lines(&storm, 30);
    assert!(lines.iter().all(|l| l.ends_with(":NOTFOUND")), "{lines:?}");

    // A call that used the module holds it: unload refused, then done after hangup.
    a.cli("channel originate Local/hold@emc application Wait 5");
    let lines = wait_for_lines(&out, 6);
    assert_eq!(lines[5], "HELD X=15551234567@pbx.example.org", "{lines:?}");
    let refused = a.cli("module unload res_privateness.so");
    assert!(
        refused.contains("Unable to unload") || refused.contains("failed"),
        "unload during a call: {refused}"
    );
    let t0 = Instant::now();
    loop {
        let r = a.cli("module unload res_privateness.so");
        if r.contains("Unloaded res_privateness.so") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "unload never succeeded: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        !a.mapped(),
        "res_privateness.so is still mapped after unload (a thread-local destructor pinning it?)"
    );
    assert!(a.cli("privateness show status").contains("No such command"));

    // Loaded again: works, reload works, and a second unload is clean too.
    assert!(
        a.cli("module load res_privateness.so")
            .contains("Loaded res_privateness.so")
    );
    assert!(
        a.cli("dialplan eval function EMC_ENUM(+15551234567)")
            .contains("Result: 15551234567@pbx.example.org")
    );
    let conf_file = a.conf.parent().unwrap().join("privateness.conf");
    let mut c = std::fs::read_to_string(&conf_file).unwrap();
    c.push_str("ttl_cap = 120\n");
    std::fs::write(&conf_file, c).unwrap();
    assert!(
        a.cli("module reload res_privateness.so")
            .contains("reloaded successfully")
    );
    // Asterisk's logger thread writes the line a moment after the reload returns.
    let t0 = Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(a.run_dir.join("log/messages.log")).unwrap();
        if log.contains("privateness.conf reloaded") || t0.elapsed() > Duration::from_secs(5) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.contains("privateness.conf reloaded: cache kept (1 cached)"),
        "{log}"
    );
    assert!(
        a.cli("module unload res_privateness.so")
            .contains("Unloaded res_privateness.so")
    );
    assert!(!a.mapped());
    assert!(a.cli("module load res_privateness.so").contains("Loaded"));

    let log = std::fs::read_to_string(a.run_dir.join("log/messages.log")).unwrap();
    assert!(!log.contains("panic"), "{log}");
    assert!(!log.contains("Failure in dlclose"), "{log}");
    a.cli("core stop now");
    let t0 = Instant::now();
    while a.proc.running() && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!a.proc.running(), "Asterisk did not stop");
}

/// The payee's and payer's dialplans for the real-Asterisk RANDPAY test. Local
/// channels stand in for the SIP trunk (these builds have no PJSIP): both sides
/// key the call as `<number>@rp-test` through `RANDPAY_CALLID`, as PJSIP
/// channels would by their Call-ID.
fn randpay_dialplan(out: &Path) -> String {
    let out = out.display();
    let payee_ctx = |name: &str, wait: u32| {
        format!(
            r#"[{name}]
exten => _+X.,1,Set(CALLED=${{EXTEN}})
 same => n,Set(RANDPAY_CALLID=${{EXTEN}}@rp-test)
 same => n,RandpayRequire()
 same => n,System(echo "PAYEE ${{CALLED}} ${{RANDPAY_STATUS}}" >> {out})
 same => n,Answer()
 same => n,Wait({wait})
 same => n,Hangup()
exten => h,1,System(echo "PAYEE-END ${{CALLED}} cause=${{HANGUPCAUSE}} status=${{RANDPAY_STATUS}}" >> {out})
"#
        )
    };
    let payer_ctx = |name: &str, wait: u32| {
        format!(
            r#"[{name}]
exten => _+X.,1,Set(RANDPAY_CALLID=${{EXTEN}}@rp-test)
 same => n,Set(T=${{RANDPAY(ticket,${{EXTEN}})}})
 same => n,System(echo "PAYER ${{EXTEN}} ${{RANDPAY_STATUS}} ${{T:0:6}}" >> {out})
 same => n,Answer()
 same => n,Wait({wait})
 same => n,Hangup()
"#
        )
    };
    [payee_ctx("rp-test-in", 40), payee_ctx("rp-test-in-25", 25), payer_ctx("rp-test-out-12", 12), payer_ctx("rp-test-out-28", 28)].join("\n")
}

/// `randpay show ledger` of a real Asterisk: (tickets, end reason) of one call.
fn real_ledger(a: &RealAsterisk, call_id: &str) -> (u32, String) {
    let text = a.cli(&format!("randpay show ledger {call_id}"));
    let row = text.lines().find(|l| l.starts_with(call_id)).unwrap_or_else(|| panic!("{call_id}:\n{text}"));
    let w: Vec<&str> = row.split_whitespace().collect();
    (w[3].parse().unwrap(), w[7..].join(" "))
}

/// RANDPAY between two real Asterisks (payer and payee) on the HTTP side
/// channel: the payer's dialplan pays with RANDPAY(), the payee's gates with
/// RandpayRequire; tickets flow each interval; a payer that stops is hung up
/// (cause 29) within interval + grace; an unpaid call is refused (cause 21);
/// both ledgers agree; the module unloads and unmaps after the calls.
#[test]
fn real_asterisks_meter_a_call_with_randpay() {
    let Some(prefix) = std::env::var_os("ASTERISK_PREFIX").map(PathBuf::from) else {
        let _ = std::io::stderr().write_all(
            "\n************************************************************************\n\
             * NOT RUN: real_asterisks_meter_a_call_with_randpay                      *\n\
             * Set ASTERISK_PREFIX to an installed Asterisk 20 or 22 to run RANDPAY   *\n\
             * between two of them. fake_hosts_meter_a_call_with_randpay ran instead.*\n\
             ************************************************************************\n"
                .as_bytes(),
        );
        return;
    };
    let (_devnet, url) = ness_tests::randpay_devnet(USER, PASSWORD);
    let base = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let out = base.path().join("rp-out.txt");
    // The shipped examples are loaded too (PJSIP is not in these builds, so they only have to parse).
    let dialplan = format!("#include \"{}\"\n\n{}", repo().join("dialplan/asterisk/randpay.conf").display(), randpay_dialplan(&out));
    let payee = start_asterisk_with(
        &prefix,
        &base.path().join("payee"),
        &url,
        &format!(
            "[randpay]\nrole = payee\nwallet = payee\nledger = {}\ntariff = {RP_TARIFF}\nside_channel = 127.0.0.1:{port}\nside_peers = 127.0.0.1\n",
            base.path().join("payee.db").display()
        ),
        &dialplan,
        None,
    );
    let payer = start_asterisk_with(
        &prefix,
        &base.path().join("payer"),
        &url,
        &format!(
            "[randpay]\nrole = payer\nwallet = payer\nledger = {}\npayee_url = http://127.0.0.1:{port}\n",
            base.path().join("payer.db").display()
        ),
        &dialplan,
        None,
    );
    assert!(payee.cli("core show application RandpayRequire").contains("RandpayRequire([tariff])"));
    assert!(payer.cli("dialplan show randpay-out").contains("b(randpay-pay^s^1(${EXTEN}))"), "the shipped randpay.conf did not load");
    assert!(payer.cli("dialplan show randpay-pay").contains("RANDPAY(ticket,${ARG1})"));

    // The payer pays interval 0 of two calls (as Dial's b() handler would, before the INVITE) ...
    payer.cli("channel originate Local/+4930123456@rp-test-out-28 application Wait 30");
    payer.cli("channel originate Local/+4930999@rp-test-out-12 application Wait 30");
    let lines = wait_for_lines(&out, 2);
    assert!(lines.iter().all(|l| l.starts_with("PAYER ") && l.ends_with(" PAID seq=0;")), "{lines:?}");
    // ... and the payee lets them through; a call nobody paid for is refused.
    payee.cli("channel originate Local/+4930123456@rp-test-in-25 application Wait 40");
    payee.cli("channel originate Local/+4930999@rp-test-in application Wait 40");
    let answered = Instant::now();
    payee.cli("channel originate Local/+4930777@rp-test-in application Wait 5");
    let lines = wait_for_lines(&out, 5);
    for want in ["PAYEE +4930123456 PAID", "PAYEE +4930999 PAID", "PAYEE-END +4930777 cause=21 status=UNPAID"] {
        assert!(lines.iter().any(|l| l == want), "{want}: {lines:?}");
    }

    // 12 s in: two intervals paid for each call.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(answered.elapsed()));
    let calls = payee.cli("randpay show calls");
    for id in ["+4930123456@rp-test", "+4930999@rp-test"] {
        let row = calls.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id}: {calls}"));
        assert_eq!(row.split_whitespace().nth(3), Some("2"), "{calls}");
    }
    // The short payer call has ended by now; its payee leg is hung up at 2T+G.
    let t0 = Instant::now();
    let end = loop {
        let lines: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
        if let Some(l) = lines.iter().find(|l| l.starts_with("PAYEE-END +4930999")) {
            break l.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never hung up: {lines:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let since_answer = answered.elapsed().as_secs_f64();
    assert_eq!(end, "PAYEE-END +4930999 cause=29 status=PAID");
    assert!(
        (2.0 * RP_INTERVAL + RP_GRACE - 0.5..=2.0 * RP_INTERVAL + RP_GRACE + 2.5).contains(&since_answer),
        "hung up {since_answer:.1} s after the answer"
    );
    // The held call runs its 25 s (three intervals paid) and hangs up normally.
    let lines = wait_for_lines(&out, 7);
    assert!(lines.iter().any(|l| l == "PAYEE-END +4930123456 cause=16 status=PAID"), "{lines:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(real_ledger(&payee, "+4930123456@rp-test"), (3, "hangup".into()));
    assert_eq!(real_ledger(&payer, "+4930123456@rp-test"), (3, "hangup".into()));
    assert_eq!(real_ledger(&payee, "+4930999@rp-test"), (2, "unpaid".into()));

    for a in [&payee, &payer] {
        let r = a.cli("module unload res_privateness.so");
        assert!(r.contains("Unloaded res_privateness.so"), "{r}");
        assert!(!a.mapped(), "still mapped after unload");
        let log = std::fs::read_to_string(a.run_dir.join("log/messages.log")).unwrap();
        assert!(!log.contains("panic"), "{log}");
    }
    for mut a in [payee, payer] {
        a.cli("core stop now");
        let t0 = Instant::now();
        while a.proc.running() && t0.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The layouts written by hand in asterisk-module/src/ffi.rs, as the installed
/// headers of a real Asterisk have them (compiled with the system's C compiler).
#[test]
fn layouts_match_the_installed_headers() {
    let Some(prefix) = std::env::var_os("ASTERISK_PREFIX").map(PathBuf::from) else {
        let _ = std::io::stderr().write_all(
            b"\n*** NOT RUN: layouts_match_the_installed_headers: set ASTERISK_PREFIX (with headers: make install-headers) ***\n",
        );
        return;
    };
    let include = prefix.join("include");
    assert!(
        include.join("asterisk.h").exists(),
        "{} has no asterisk.h: install the headers too (`make install-headers` in the Asterisk source)",
        include.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("layout");
    let cc = Command::new("cc")
        .arg(format!("-I{}", include.display()))
        .arg(repo().join("tests/fixtures/asterisk-layout.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc (build-essential)");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let out = String::from_utf8(Command::new(&exe).output().unwrap().stdout).unwrap();
    let (table, key) = out.split_once("key=").unwrap();
    // The numbers asserted at compile time in asterisk-module/src/ffi.rs.
    let expected = "ast_module_info=160\nast_module_info.name=32\nast_module_info.flags=56\nast_module_info.buildopt_sum=60\n\
        ast_module_info.load_pri=93\nast_module_info.requires=96\nast_module_info.support_level=152\n\
        ast_custom_function=176\nast_custom_function.synopsis=16\nast_custom_function.docsrc=96\n\
        ast_custom_function.read=104\nast_custom_function.read_max=120\nast_custom_function.mod=136\n\
        ast_custom_function.acflist=152\nast_cli_entry=200\nast_cli_entry.summary=128\nast_cli_entry.inuse=144\n\
        ast_cli_entry.command=176\nast_cli_entry.handler=184\nast_cli_args=40\nast_cli_args.word=24\n\
        ast_cli_args.n=36\nast_datastore_info=40\nast_datastore=48\nast_datastore.inheritance=32\n\
        ast_variable.next=16\nast_variable.lineno=32\n";
    let strip = |s: &str| s.lines().map(str::trim).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(table), strip(expected));
    assert_eq!(md5_hex(key.as_bytes()), "8776793523ea3ad3252abb3587e42224", "the header's ASTERISK_GPL_KEY");
}

/// RANDPAY over a real PJSIP trunk between two real Asterisks (an
/// ASTERISK_PREFIX built with pjproject): the payer dials through the shipped
/// `[randpay-out]` (Dial's `b()` handler pays before the INVITE leaves), the
/// payee gates with `RandpayRequire`. Both sides key the call by its SIP
/// Call-ID (`CHANNEL(pjsip,call-id)`), the held call's intervals are paid and
/// ledgered on both sides, and a call nobody paid for gets `402 Payment
/// Required` on the wire (`PJSIPHangup`).
#[test]
fn real_asterisks_meter_a_pjsip_call_with_randpay() {
    let not_run = |why: &str| {
        let _ = std::io::stderr().write_all(
            format!(
                "\n************************************************************************\n\
                 * NOT RUN: real_asterisks_meter_a_pjsip_call_with_randpay\n\
                 * {why}\n\
                 * (fake_hosts_meter_a_call_with_randpay covers the PJSIP paths on a fake host.)\n\
                 ************************************************************************\n"
            )
            .as_bytes(),
        );
    };
    let Some(prefix) = std::env::var_os("ASTERISK_PREFIX").map(PathBuf::from) else {
        return not_run("Set ASTERISK_PREFIX to an Asterisk 20 or 22 built with pjproject.");
    };
    if !prefix.join("lib/asterisk/modules/chan_pjsip.so").exists() {
        return not_run(&format!("{} has no chan_pjsip.so (built without pjproject).", prefix.display()));
    }
    let (_devnet, url) = ness_tests::randpay_devnet(USER, PASSWORD);
    let base = tempfile::tempdir().unwrap();
    let (side, payee_sip, payer_sip) = (free_tcp_port(), free_udp_port(), free_udp_port());
    let out = base.path().join("pj-out.txt");
    let o = out.display();
    let transport = |port: u16| format!("[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{port}\n\n");
    let endpoint = |name: &str, context: &str, contact: Option<u16>| {
        let aor = contact.map_or(String::new(), |p| format!("[{name}]\ntype = aor\ncontact = sip:127.0.0.1:{p}\n\n"));
        format!(
            "[{name}]\ntype = endpoint\ncontext = {context}\ndisallow = all\nallow = ulaw\ndirect_media = no\n{aors}\n{aor}[{name}]\ntype = identify\nendpoint = {name}\nmatch = 127.0.0.1\n",
            aors = if contact.is_some() { format!("aors = {name}\n") } else { String::new() }
        )
    };
    let payee = start_asterisk_with(
        &prefix,
        &base.path().join("payee"),
        &url,
        &format!(
            "[randpay]\nrole = payee\nwallet = payee\nledger = {}\ntariff = {RP_TARIFF}\nside_channel = 127.0.0.1:{side}\nside_peers = 127.0.0.1\n",
            base.path().join("payee.db").display()
        ),
        &format!(
            r#"[pj-in]
exten => _+X.,1,Set(CALLED=${{EXTEN}})
 same => n,RandpayRequire()
 same => n,System(echo "PAYEE ${{CALLED}} ${{RANDPAY_STATUS}} ${{RANDPAY(callid)}}" >> {o})
 same => n,Answer()
 same => n,Wait(25)
 same => n,Hangup()
exten => h,1,System(echo "PAYEE-END ${{CALLED}} cause=${{HANGUPCAUSE}} status=${{RANDPAY_STATUS}}" >> {o})
"#
        ),
        Some(&(transport(payee_sip) + &endpoint("payer", "pj-in", None))),
    );
    let payer = start_asterisk_with(
        &prefix,
        &base.path().join("payer"),
        &url,
        &format!(
            "[randpay]\nrole = payer\nwallet = payer\nledger = {}\npayee_url = http://127.0.0.1:{side}\n",
            base.path().join("payer.db").display()
        ),
        &format!(
            r#"#include "{shipped}"

; A call placed without paying (no b() handler).
[pj-unpaid]
exten => _+X.,1,Dial(PJSIP/${{EXTEN}}@provider)
 same => n,System(echo "PAYER-UNPAID ${{HANGUPCAUSE(${{HANGUPCAUSE_KEYS()}},tech)}}" >> {o})
 same => n,Hangup()
"#,
            shipped = repo().join("dialplan/asterisk/randpay.conf").display()
        ),
        Some(&(transport(payer_sip) + &endpoint("provider", "pj-back", Some(payee_sip)))),
    );
    for a in [&payee, &payer] {
        // Listed is not loaded: a module whose dependencies are missing shows "Not Running".
        let m = a.cli("module show like pjsip");
        for module in ["chan_pjsip.so", "res_pjsip_header_funcs.so", "res_pjsip_session.so"] {
            assert!(m.lines().any(|l| l.contains(module) && l.contains("Running") && !l.contains("Not Running")), "{module} is not running:\n{m}");
        }
    }

    // A paid call through the shipped [randpay-out], and one nobody pays for.
    payer.cli("channel originate Local/+4930123456@randpay-out application Wait 40");
    let lines = wait_for_lines(&out, 1);
    let paid: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&paid[..3], ["PAYEE", "+4930123456", "PAID"], "{lines:?}");
    let call_id = paid[3].to_owned();
    assert!(!call_id.is_empty() && !call_id.contains("payee-"), "the payee keyed the call by {call_id:?}, not its SIP Call-ID");
    let answered = Instant::now();
    let calls = payer.cli("randpay show calls");
    assert!(calls.lines().any(|l| l.starts_with(&call_id)), "the payer pays under another key than the payee's {call_id}:\n{calls}");

    payer.cli("channel originate Local/+4930777@pj-unpaid application Wait 5");
    let line = wait_for_line(&out, "PAYER-UNPAID");
    assert_eq!(line, "PAYER-UNPAID SIP 402 Payment Required");

    // 12 s in: two intervals paid; the 25 s call ends with three, on both sides.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(answered.elapsed()));
    let calls = payee.cli("randpay show calls");
    let row = calls.lines().find(|l| l.starts_with(&call_id)).unwrap_or_else(|| panic!("{call_id}: {calls}"));
    assert_eq!(row.split_whitespace().nth(3), Some("2"), "{calls}");
    assert_eq!(wait_for_line(&out, "PAYEE-END +4930123456"), "PAYEE-END +4930123456 cause=16 status=PAID");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(real_ledger(&payee, &call_id), (3, "hangup".into()));
    assert_eq!(real_ledger(&payer, &call_id).0, 3);

    for mut a in [payee, payer] {
        let log = std::fs::read_to_string(a.run_dir.join("log/messages.log")).unwrap();
        assert!(!log.contains("panic"), "{log}");
        // The shipped randpay.conf's expressions parse (a ticket has quotes in it).
        assert!(!log.contains("ast_yyerror"), "{log}");
        a.cli("core stop now");
        let t0 = Instant::now();
        while a.proc.running() && t0.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The first line of `path` starting with `start` (waiting up to 20 s).
fn wait_for_line(path: &Path, start: &str) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(start)) {
            return l.to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no line {start:?} in {}: {text}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real Asterisk hosts one end of a Skywire trunk (trunk_config), the
/// `ness-trunk` daemon the other, over a TCP carrier on loopback: the trunk
/// comes up, `privateness show trunks` says so, SIP crosses with its ports
/// intact, and `module unload` frees the relay's ports and unmaps the module.
#[test]
fn real_asterisk_hosts_a_skywire_trunk() {
    use std::os::unix::fs::PermissionsExt;
    let Some(prefix) = std::env::var_os("ASTERISK_PREFIX").map(PathBuf::from) else {
        let _ = std::io::stderr().write_all(
            "\n************************************************************************\n\
             * NOT RUN: real_asterisk_hosts_a_skywire_trunk                          *\n\
             * Set ASTERISK_PREFIX to an installed Asterisk 20 or 22 to run the      *\n\
             * trunk relay inside it (fake_hosts_run_a_skywire_trunk ran instead).  *\n\
             ************************************************************************\n"
                .as_bytes(),
        );
        return;
    };
    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (sip, rtp, carrier) = (free_udp_port(), free_udp_port(), free_tcp_port());
    let toml = |name: &str, me: &str, peer: &str, local: &str, owned: &str, role: String| {
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
    let b_conf = toml("to-asterisk", B, A, "127.77.40.2", "127.77.40.1", format!("listen = \"127.0.0.1:{carrier}\""));
    let a_conf = toml("to-daemon", A, B, "127.77.41.1", "127.77.41.2", format!("dial = {{ carrier = \"tcp\", addr = \"127.0.0.1:{carrier}\" }}"));
    let mut daemon = Proc::start(bin("ness-trunk"), &["--config", b_conf.to_str().unwrap()], &[("RUST_LOG", "info")]);
    daemon.wait_for("relaying", Duration::from_secs(10));
    let a = start_asterisk_with(&prefix, &dir.path().join("ast"), "http://127.0.0.1:9/", &format!("trunk_config = {}\n", a_conf.display()), "", None);
    let t0 = Instant::now();
    loop {
        let shown = a.cli("privateness show trunks");
        if shown.lines().any(|l| l.starts_with("to-daemon") && l.split_whitespace().nth(1) == Some("up")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "the trunk did not come up:\n{shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pbx_a = std::net::UdpSocket::bind(("127.77.41.1", sip)).unwrap();
    let pbx_b = std::net::UdpSocket::bind(("127.77.40.2", sip)).unwrap();
    pbx_b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    pbx_a.send_to(b"OPTIONS sip:127.77.41.2 SIP/2.0\r\n\r\n", ("127.77.41.2", sip)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = pbx_b.recv_from(&mut buf).expect("the OPTIONS did not cross from the Asterisk-hosted relay");
    assert_eq!((&buf[..n], from.to_string()), (&b"OPTIONS sip:127.77.41.2 SIP/2.0\r\n\r\n"[..], format!("127.77.40.1:{sip}")));
    let shown = a.cli("privateness show trunks");
    let row: Vec<&str> = shown.lines().find(|l| l.starts_with("to-daemon")).unwrap().split_whitespace().collect();
    assert_eq!(row[4], "1", "SIP out: {shown}");

    let out = a.cli("module unload res_privateness.so");
    assert!(out.contains("Unloaded res_privateness.so"), "{out}");
    assert!(!a.mapped(), "res_privateness.so is still mapped after unload");
    std::net::UdpSocket::bind(("127.77.41.2", sip)).expect("unload left the relay's SIP port bound");
}
