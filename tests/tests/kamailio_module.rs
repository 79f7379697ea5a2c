//! privateness.so inside a real Kamailio (Debian's 5.6), on loopback: a devnet
//! with signed records, SIPp user agents and sipsak as the SIP peers, the
//! dialplan/kamailio configurations (native cfg and Lua/KEMI) as they ship.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ness_core::nvs::{Credentials, NameValue, NodeConfig, NvsClient};
use ness_tests::{Proc, addr_after, bin, require_tool, run};

const USER: &str = "kam";
const PASSWORD: &str = "kam-password";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Ports {
    kamailio: u16,
    busy: u16,
    answer: u16,
    never: u16,
    options: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports { kamailio: free_udp_port(), busy: free_udp_port(), answer: free_udp_port(), never: free_udp_port(), options: free_udp_port() }
    }
}

/// A devnet with the verifier and the test numbers.
fn devnet(ports: &Ports) -> (Proc, String, NvsClient) {
    let mut p = Proc::start(bin("ness-devnet"), &["--listen", "127.0.0.1:0", "--rpcuser", USER, "--automine"], &[(
        "NESS_DEVNET_RPCPASSWORD",
        PASSWORD,
    )]);
    let url = format!("http://{}/", addr_after(&p.wait_for("JSON-RPC on", Duration::from_secs(20)), "JSON-RPC on"));
    let node = NvsClient::new(&NodeConfig::new(&url, Credentials::UserPassword { user: USER.into(), password: PASSWORD.into() })).unwrap();
    block_on(async {
        node.call("generate", vec![serde_json::json!(101)]).await.unwrap();
        let verifier = node.get_new_address(true).await.unwrap();
        node.name_new("ver:enum", &NameValue::from("kamailio test verifier"), 365, Some(&verifier)).await.unwrap();
        let signed = |name: &str, lines: String| {
            let (node, verifier, name) = (node.clone(), verifier.clone(), name.to_owned());
            async move {
                let sig = node.sign_message(&verifier, &name).await.unwrap();
                node.name_new(&name, &NameValue::from(format!("{lines}\nSIG=ver:enum|{sig}").as_str()), 365, None).await.unwrap();
            }
        };
        // A call number: order 100 pref 10 is busy, pref 20 answers; order 200 must never be tried.
        signed(
            "enum:15550100001:0",
            format!(
                "E2U+sip=100|10|!^.*$!sip:first@127.0.0.1:{}!\nE2U+sip=100|20|!^.*$!sip:second@127.0.0.1:{}!\nE2U+sip=200|10|!^.*$!sip:never@127.0.0.1:{}!",
                ports.busy, ports.answer, ports.never
            ),
        )
        .await;
        // A squatter's unsigned record that would win if it counted.
        node.name_new(
            "enum:15550100001:1",
            &NameValue::from(format!("E2U+sip=1|1|!^.*$!sip:squatter@127.0.0.1:{}!", ports.never).as_str()),
            365,
            None,
        )
        .await
        .unwrap();
        // An OPTIONS target, and a regexp with a back-reference.
        signed("enum:15550100002:0", format!("E2U+sip=10|10|!^\\+(.*)$!sip:\\1@127.0.0.1:{}!", ports.options)).await;
    });
    (p, url, node)
}

fn sipp(scenario: &str, port: u16, trace: &Path) -> Proc {
    Proc::start(require_tool("sipp", "sip-tester"), &[
        "-sf",
        repo().join("tests/sipp").join(scenario).to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-nostdin",
        "-trace_msg",
        "-message_file",
        trace.to_str().unwrap(),
    ], &[])
}

fn kamailio(cfg: &str, ports: &Ports, node_url: &str, dir: &Path) -> Proc {
    kamailio_with(cfg, ports, node_url, dir, &[])
}

fn kamailio_with(cfg: &str, ports: &Ports, node_url: &str, dir: &Path, extra: &[String]) -> Proc {
    let kam = require_tool("kamailio", "kamailio");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut defines = vec![
        format!("LISTEN=udp:127.0.0.1:{}", ports.kamailio),
        format!("PRIVATENESS_SO=\"{}\"", bin("libprivateness.so").display()),
        format!("NODE_URL=\"{node_url}\""),
        format!("RPC_USER=\"{USER}\""),
        format!("RPC_PASSWORD=\"{PASSWORD}\""),
        format!("CTL_SOCKET=\"unix:{}/ctl\"", run_dir.display()),
        format!("LUA_SCRIPT=\"{}\"", repo().join("dialplan/kamailio/privateness.lua").display()),
        // One SIP worker: caches are per process, and the stale-answer check needs
        // the worker that cached the number (README: "Caches").
        "CHILDREN=1".to_owned(),
        "TTL_CAP=1".to_owned(),
    ];
    defines.extend_from_slice(extra);
    let cfg = repo().join("dialplan/kamailio").join(cfg);
    let mut args = vec![
        "-f".to_owned(), cfg.to_str().unwrap().to_owned(), "-DD".into(), "-E".into(), "-e".into(),
        "-Y".into(), run_dir.to_str().unwrap().to_owned(), "-P".into(), run_dir.join("kamailio.pid").to_str().unwrap().to_owned(),
        "-m".into(), "64".into(), "-M".into(), "8".into(),
    ];
    for d in &defines {
        args.push("-A".into());
        args.push(d.clone());
    }
    let mut p = Proc::start(kam, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    p.wait_for("node http://", Duration::from_secs(20));
    // Wait until the SIP workers answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if sipsak(ports.kamailio, "nobody").is_some() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("kamailio did not answer; log:\n{}", p.log.join("\n"));
}

/// The first status line of the reply to an OPTIONS for `user`, and how long it took.
fn sipsak(port: u16, user: &str) -> Option<String> {
    sipsak_timed(port, user).0
}

fn sipsak_timed(port: u16, user: &str) -> (Option<String>, Duration) {
    let started = Instant::now();
    let out = run(&require_tool("sipsak", "sipsak"), &["-vv", "-s", &format!("sip:{user}@127.0.0.1:{port}")], &[], Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let status = text.lines().map(str::trim).find(|l| l.starts_with("SIP/2.0 ")).map(str::to_owned);
    (status, started.elapsed())
}

fn kamcmd(dir: &Path, args: &[&str]) -> String {
    let sock = format!("unix:{}/run/ctl", dir.display());
    let mut all = vec!["-s", sock.as_str()];
    all.extend_from_slice(args);
    let out = run(&require_tool("kamcmd", "kamailio"), &all, &[], Duration::from_secs(10));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn uac(port: u16, number: &str, dir: &Path) -> bool {
    let out = run(&require_tool("sipp", "sip-tester"), &[
        "-sf", repo().join("tests/sipp/uac.xml").to_str().unwrap(),
        &format!("127.0.0.1:{port}"), "-s", number, "-m", "1", "-i", "127.0.0.1", "-p", &free_udp_port().to_string(),
        "-timeout", "15", "-timeout_error", "-nostdin", "-trace_err", "-error_file", dir.join("uac.err").to_str().unwrap(),
    ], &[], Duration::from_secs(30));
    out.status.success()
}

fn trace(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The whole scenario, for one configuration.
fn scenario(cfg: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let (mut devnet, url, _node) = devnet(&ports);
    let traces = |n: &str| dir.path().join(format!("{n}.trace"));
    let _busy = sipp("uas_busy.xml", ports.busy, &traces("busy"));
    let _answer = sipp("uas_answer.xml", ports.answer, &traces("answer"));
    let _never = sipp("uas_answer.xml", ports.never, &traces("never"));
    let _options = sipp("uas_options.xml", ports.options, &traces("options"));
    std::thread::sleep(Duration::from_millis(500));
    let mut kam = kamailio(cfg, &ports, &url, dir.path());

    // A call: the busy first target, then the second by preference; the order-200
    // target and the squatter's record never see it.
    assert!(uac(ports.kamailio, "+15550100001", dir.path()), "the call was not answered: {}", trace(&dir.path().join("uac.err")));
    let busy = trace(&traces("busy"));
    let answer = trace(&traces("answer"));
    assert!(busy.contains("INVITE sip:first@127.0.0.1:"), "first target: {busy}");
    assert!(answer.contains("INVITE sip:second@127.0.0.1:"), "second target: {answer}");
    assert!(!trace(&traces("never")).contains("INVITE"), "a higher order or a squatter was tried");

    // OPTIONS through the back-reference regexp.
    assert_eq!(sipsak(ports.kamailio, "+15550100002").as_deref(), Some("SIP/2.0 200 OK from ness-uas"));
    assert!(trace(&traces("options")).contains(&format!("OPTIONS sip:15550100002@127.0.0.1:{} SIP/2.0", ports.options)));

    // Unknown numbers and garbage: the not-found route, never a crash.
    assert_eq!(sipsak(ports.kamailio, "+15550109999").as_deref(), Some("SIP/2.0 404 Not in ENUM"));
    let long = format!("+1{}", "5".repeat(300));
    for user in ["abc", long.as_str(), "+1555%00%ff", "+%E2%98%8E", "15550100002x", "+"] {
        assert_eq!(sipsak(ports.kamailio, user).as_deref(), Some("SIP/2.0 404 Not in ENUM"), "{user}");
    }

    // RPC.
    let status = kamcmd(dir.path(), &["privateness.status"]);
    assert!(status.contains("node: reachable"), "{status}");
    // The six garbage users above, and the readiness probe's "nobody".
    assert!(status.contains("invalid_numbers: 7"), "{status}");
    let lookup = kamcmd(dir.path(), &["privateness.lookup", "s:+15550100001"]);
    assert!(lookup.contains("target2: q=0.980 order=100 pref=20 sip:second@"), "{lookup}");
    assert!(lookup.contains("ignored1: enum:15550100001:1: not signed by any verifier"), "{lookup}");

    // The node dies: cached numbers still route (stale), others fail over within
    // the lookup deadline, and the workers stay responsive.
    devnet.kill();
    std::thread::sleep(Duration::from_millis(1500)); // past the 1 s TTL cap
    let (status, took) = sipsak_timed(ports.kamailio, "+15550100002");
    assert_eq!(status.as_deref(), Some("SIP/2.0 200 OK from ness-uas"), "stale answer");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (status, took) = sipsak_timed(ports.kamailio, "+15550108888");
    assert_eq!(status.as_deref(), Some("SIP/2.0 503 ENUM temporarily unavailable"));
    assert!(took < Duration::from_secs(3), "a SIP worker was held {took:?}");
    for _ in 0..4 {
        let (status, took) = sipsak_timed(ports.kamailio, "+15550108888");
        assert!(status.is_some() && took < Duration::from_secs(3));
    }
    let status = kamcmd(dir.path(), &["privateness.status"]);
    assert!(status.contains("node: unreachable"), "{status}");
    assert!(!status.contains("stale_answers: 0"), "{status}");
    assert!(kamcmd(dir.path(), &["privateness.cache_flush"]).contains("flushed"));
    kam.kill();
    let log = kam.log.join("\n");
    assert!(!log.contains("panic") && !log.contains("terminating due to SIGCHLD"), "{log}");
}

#[test]
fn native_cfg_routes_calls_by_nvs() {
    scenario("kamailio.cfg");
}

#[test]
fn lua_script_routes_calls_by_nvs() {
    scenario("kamailio-lua.cfg");
}

/// The Lua hook script of [`lua_hooks_reroute_reject_and_survive_bad_scripts`]:
/// numbers pick the behaviour (the +1555010900x ones have no ENUM record).
fn hooks_script(options_port: u16, reject: bool) -> String {
    format!(
        r#"-- test hooks (tests/tests/kamailio_module.rs)
function on_enum(ctx)
  local n = ctx.number
  if n == "+15550100001" then
    -- only the second route (the first would answer busy)
    return {{ ctx.candidates[2].uri }}
  elseif n == "+15550109001" and {reject} then
    return {{ reject = 403, reason = "Blocked By Hook" }}
  elseif n == "+15550109002" then
    while true do end
  elseif n == "+15550109003" then
    local t = {{}}
    for i = 1, 1e9 do t[i] = string.rep("x", 100) .. i end
  elseif n == "+15550109004" then
    error("a bug in the script")
  elseif n == "+15550109005" then
    os.execute("touch /tmp/ness-hook-escaped")
  elseif n == "+15550109006" then
    ness.log("info", "adding a route for " .. n .. " from caller " .. ctx.caller)
    return {{ "sip:15550100002@127.0.0.1:{options_port}" }}
  end
  return nil
end
"#
    )
}

/// Lua hooks (hooks_script) through a real Kamailio with SIPp and sipsak:
/// `on_enum` reroutes a call, adds a route for an unknown number and rejects
/// another with its own code; a script that loops, allocates without bound,
/// raises an error or calls `os` is stopped and the call takes the default
/// route, without holding the worker; `privateness.reload_hooks` swaps the
/// script, and a script that does not compile is refused and the old one runs on.
#[test]
fn lua_hooks_reroute_reject_and_survive_bad_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let (_devnet, url, _node) = devnet(&ports);
    let traces = |n: &str| dir.path().join(format!("{n}.trace"));
    let _busy = sipp("uas_busy.xml", ports.busy, &traces("busy"));
    let _answer = sipp("uas_answer.xml", ports.answer, &traces("answer"));
    let _options = sipp("uas_options.xml", ports.options, &traces("options"));
    std::thread::sleep(Duration::from_millis(500));
    let script = dir.path().join("hooks.lua");
    std::fs::write(&script, hooks_script(ports.options, true)).unwrap();
    let _ = std::fs::remove_file("/tmp/ness-hook-escaped");
    let mut kam = kamailio_with("kamailio.cfg", &ports, &url, dir.path(), &[format!("HOOKS_SCRIPT=\"{}\"", script.display())]);

    // Rerouted: the busy first target never sees the call.
    assert!(uac(ports.kamailio, "+15550100001", dir.path()), "the call was not answered: {}", trace(&dir.path().join("uac.err")));
    assert!(trace(&traces("answer")).contains("INVITE sip:second@127.0.0.1:"));
    assert!(!trace(&traces("busy")).contains("INVITE"), "the hook's route list was not used");
    // A route added for a number without records; a rejection with the hook's code.
    assert_eq!(sipsak(ports.kamailio, "+15550109006").as_deref(), Some("SIP/2.0 200 OK from ness-uas"));
    assert_eq!(sipsak(ports.kamailio, "+15550109001").as_deref(), Some("SIP/2.0 403 Blocked By Hook"));
    // Bad scripts: stopped, logged, and the default (not found) applies at once.
    for (number, why) in [("+15550109002", "instructions"), ("+15550109003", "memory"), ("+15550109004", "hooks.lua:15: a bug in the script"), ("+15550109005", "hooks.lua:17:")] {
        let (status, took) = sipsak_timed(ports.kamailio, number);
        assert_eq!(status.as_deref(), Some("SIP/2.0 404 Not in ENUM"), "{number}");
        assert!(took < Duration::from_secs(3), "{number} held the worker {took:?}");
        kam.wait_for(why, Duration::from_secs(5));
    }
    assert!(!Path::new("/tmp/ness-hook-escaped").exists(), "os.execute ran");
    assert!(kam.drain().iter().any(|l| l.contains("lua: adding a route for +15550109006 from caller sipsak")), "ness.log or ctx.caller did not work");

    // Reload: the new script stops rejecting; a broken one is refused with its line.
    std::fs::write(&script, hooks_script(ports.options, false)).unwrap();
    let reply = kamcmd(dir.path(), &["privateness.reload_hooks"]);
    assert!(reply.contains("compiles"), "{reply}");
    assert_eq!(sipsak(ports.kamailio, "+15550109001").as_deref(), Some("SIP/2.0 404 Not in ENUM"));
    std::fs::write(&script, "function on_enum(ctx)\n  return {\nend\n").unwrap();
    let reply = kamcmd(dir.path(), &["privateness.reload_hooks"]);
    assert!(reply.contains("does not compile") && reply.contains("hooks.lua:3:"), "{reply}");
    assert_eq!(sipsak(ports.kamailio, "+15550109006").as_deref(), Some("SIP/2.0 200 OK from ness-uas"), "the running script must stay");
    kam.kill();
    let log = kam.log.join("\n");
    assert!(!log.contains("panic") && !log.contains("terminating due to SIGCHLD"), "{log}");
}

/// `emc_trunk_select()`: the Lua `on_trunk` hook picks one of the Skywire
/// trunks of trunk_config by the called number, and the script gets the
/// peer address that trunk's relay owns; without an answer (nil, or a failing
/// script) it returns -1 and the script routes as it would without. Both in a
/// native cfg and through KEMI (app_lua), where a destination that is not a
/// pseudo-variable is refused with a reason.
#[test]
fn lua_on_trunk_picks_a_skywire_trunk() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("secret"), "8f2c1d4e6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d\n").unwrap();
    std::fs::set_permissions(p("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let a = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    let b = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";
    let (sip, rtp1, rtp2) = (free_udp_port(), free_udp_port(), free_udp_port());
    let trunk = |name: &str, local: &str, peer: &str, rtp: u16| {
        format!(
            "[[trunk]]\nname = \"{name}\"\nme = \"{a}\"\npeer = \"{b}\"\nsecret_file = \"{}\"\nlocal_address = \"{local}\"\npeer_address = \"{peer}\"\nsip_ports = [{sip}]\nrtp_ports = \"{rtp}-{rtp}\"\nlisten = \"127.0.0.1:{}\"\n\n",
            p("secret"),
            free_udp_port()
        )
    };
    std::fs::write(p("trunk.toml"), trunk("berlin", "127.77.60.1", "127.77.60.2", rtp1) + &trunk("paris", "127.77.61.1", "127.77.61.2", rtp2)).unwrap();
    std::fs::write(
        p("hooks.lua"),
        "function on_trunk(ctx)\n  if ctx.number:sub(1, 3) == \"+33\" then return \"paris\" end\n  if ctx.number:sub(1, 3) == \"+49\" then return \"berlin\" end\n  if ctx.number == \"+1999\" then error(\"no such plan\") end\n  return nil\nend\n",
    )
    .unwrap();
    let port = free_udp_port();
    std::fs::create_dir_all(p("run")).unwrap();
    std::fs::write(
        p("trunk.cfg"),
        format!(
            "debug=2\nlog_stderror=no\nchildren=1\nlisten=udp:127.0.0.1:{port}\nauto_aliases=no\ndisable_tcp=yes\n\
             mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\nloadmodule \"pv.so\"\nloadmodule \"sl.so\"\nloadmodule \"xlog.so\"\nloadmodule \"{so}\"\n\
             modparam(\"privateness\", \"node_url\", \"http://127.0.0.1:9/\")\nmodparam(\"privateness\", \"rpc_user\", \"u\")\nmodparam(\"privateness\", \"rpc_password\", \"p\")\n\
             modparam(\"privateness\", \"trunk_config\", \"{trunks}\")\nmodparam(\"privateness\", \"hooks_script\", \"{hooks}\")\n\
             request_route {{\n  if (emc_trunk_select(\"$rU\", \"$var(trunk)\") == 1) {{\n    sl_send_reply(\"200\", \"via $var(trunk)\");\n  }} else {{\n    sl_send_reply(\"404\", \"No Trunk\");\n  }}\n  exit;\n}}\n",
            so = bin("libprivateness.so").display(),
            trunks = p("trunk.toml"),
            hooks = p("hooks.lua"),
        ),
    )
    .unwrap();
    let mut kam = Proc::start(
        require_tool("kamailio", "kamailio"),
        &["-f", &p("trunk.cfg"), "-DD", "-E", "-e", "-Y", &p("run"), "-P", &p("run/kamailio.pid"), "-m", "64", "-M", "8"],
        &[],
    );
    kam.wait_for("trunk(s) relaying", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    while sipsak(port, "nobody").is_none() {
        assert!(Instant::now() < deadline, "kamailio did not answer:\n{}", kam.log.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sipsak(port, "+33123456").as_deref(), Some(&*format!("SIP/2.0 200 via sip:127.77.61.2:{sip}")));
    assert_eq!(sipsak(port, "+4930123").as_deref(), Some(&*format!("SIP/2.0 200 via sip:127.77.60.2:{sip}")));
    assert_eq!(sipsak(port, "+15551234").as_deref(), Some("SIP/2.0 404 No Trunk"), "nil: no trunk");
    assert_eq!(sipsak(port, "+1999").as_deref(), Some("SIP/2.0 404 No Trunk"), "a failing script: no trunk");
    kam.wait_for("hooks.lua:4: no such plan", Duration::from_secs(5));
    kam.kill();
    let log = kam.log.join("\n");
    assert!(!log.contains("panic") && !log.contains("terminating due to SIGCHLD"), "{log}");

    // The same through KEMI (app_lua): KSR.privateness.emc_trunk_select, and a
    // destination that is not a pseudo-variable refused with a reason, for it
    // and for emc_nvs_get (before any node call).
    std::fs::write(
        p("route.lua"),
        "function ksr_request_route()
  local n = KSR.pv.get(\"$rU\")
  if n == \"bad\" then
    local t = KSR.privateness.emc_trunk_select(\"+33\", \"trunk\")
    local v = KSR.privateness.emc_nvs_get(\"dns:example.emc\", \"value\")
    KSR.sl.sl_send_reply(500, \"rc \" .. t .. \" \" .. v)
    return
  end
  if KSR.privateness.emc_trunk_select(n, \"$var(trunk)\") == 1 then
    KSR.sl.sl_send_reply(200, \"via \" .. KSR.pv.get(\"$var(trunk)\"))
  else
    KSR.sl.sl_send_reply(404, \"No Trunk\")
  end
end
",
    )
    .unwrap();
    let native = std::fs::read_to_string(p("trunk.cfg")).unwrap();
    let kemi = native[..native.find("request_route").unwrap()].replace("loadmodule \"xlog.so\"\n", "loadmodule \"xlog.so\"\nloadmodule \"app_lua.so\"\n")
        + &format!("modparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n", p("route.lua"));
    std::fs::write(p("trunk-kemi.cfg"), kemi).unwrap();
    let mut kam = Proc::start(
        require_tool("kamailio", "kamailio"),
        &["-f", &p("trunk-kemi.cfg"), "-DD", "-E", "-e", "-Y", &p("run"), "-P", &p("run/kamailio.pid"), "-m", "64", "-M", "8"],
        &[],
    );
    kam.wait_for("trunk(s) relaying", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    while sipsak(port, "nobody").is_none() {
        assert!(Instant::now() < deadline, "kamailio (KEMI) did not answer:\n{}", kam.log.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sipsak(port, "+33123456").as_deref(), Some(&*format!("SIP/2.0 200 via sip:127.77.61.2:{sip}")));
    assert_eq!(sipsak(port, "+15551234").as_deref(), Some("SIP/2.0 404 No Trunk"));
    assert_eq!(sipsak(port, "bad").as_deref(), Some("SIP/2.0 500 rc -3 -3"), "a destination that is not a pseudo-variable: module error");
    kam.wait_for("emc_trunk_select: \"trunk\" is not a pseudo-variable", Duration::from_secs(5));
    kam.wait_for("emc_nvs_get: \"value\" is not a pseudo-variable", Duration::from_secs(5));
    kam.kill();
    let log = kam.log.join("\n");
    assert!(!log.contains("panic") && !log.contains("terminating due to SIGCHLD"), "{log}");
}
