//! ENUM end to end: the `ness` CLI registers and signs records on a devnet node,
//! `ness-enum-resolver` serves them over HTTP and DNS, and real clients (`dig`,
//! an HTTP client) check what comes back — ordering, regexps, and that squatter,
//! revoked, expired and gap-hidden records are ignored.

use std::time::{Duration, Instant};

use ness_core::nvs::{Credentials, NameValue, NodeConfig, NvsClient};
use ness_tests::{Proc, addr_after, bin, require_tool, run};
use serde_json::Value;

const USER: &str = "e2e";
const PASSWORD: &str = "e2e-password";
const TOKEN: &str = "e2e-register-token-0123456789";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn start_devnet() -> (Proc, String) {
    let mut p = Proc::start(bin("ness-devnet"), &["--listen", "127.0.0.1:0", "--rpcuser", USER, "--automine"], &[(
        "NESS_DEVNET_RPCPASSWORD",
        PASSWORD,
    )]);
    let line = p.wait_for("JSON-RPC on", Duration::from_secs(20));
    let url = format!("http://{}/", addr_after(&line, "JSON-RPC on"));
    (p, url)
}

fn client(url: &str) -> NvsClient {
    NvsClient::new(&NodeConfig::new(url, Credentials::UserPassword { user: USER.into(), password: PASSWORD.into() }))
        .unwrap()
}

struct Resolver {
    _proc: Proc,
    http: String,
    dns_port: String,
    _dir: tempfile::TempDir,
}

fn start_resolver(node_url: &str, extra: &str) -> Resolver {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("resolver.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nurl = \"{node_url}\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\ntimeout_ms = 400\n\
             [resolver]\nttl_cap_secs = 2\nnegative_ttl_secs = 1\nstale_ttl_secs = 600\nlookup_timeout_ms = 900\n{extra}\n\
             [http]\nlisten = \"127.0.0.1:0\"\nregister_token = \"{TOKEN}\"\nlist_cache_secs = 0\n\
             [dns]\nlisten = [\"127.0.0.1:0\"]\nudp_sockets = 2\n"
        ),
    )
    .unwrap();
    let mut p = Proc::start(bin("ness-enum-resolver"), &["--config", config.to_str().unwrap()], &[]);
    let http = addr_after(&p.wait_for("HTTP API on", Duration::from_secs(20)), "HTTP API on");
    let dns = addr_after(&p.wait_for("DNS on", Duration::from_secs(5)), "DNS on");
    let dns_port = dns.rsplit(':').next().unwrap().to_owned();
    Resolver { _proc: p, http: format!("http://{http}"), dns_port, _dir: dir }
}

fn ness(node_url: &str, args: &[&str]) -> (i32, String, String) {
    let out = run(&bin("ness"), args, &[("NESS_NODE_URL", node_url), ("NESS_RPCUSER", USER), ("NESS_RPCPASSWORD", PASSWORD)], Duration::from_secs(30));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ness_ok(node_url: &str, args: &[&str]) -> String {
    let (code, out, err) = ness(node_url, args);
    assert_eq!(code, 0, "ness {args:?} failed: {err}");
    out
}

fn sign(node_url: &str, record: &str) -> String {
    ness_ok(node_url, &["verifier", "sign", record]).trim().to_owned()
}

fn get(url: &str) -> (u16, Value, Duration) {
    block_on(async {
        let started = Instant::now();
        let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = r.bytes().await.unwrap();
        assert!(ct.starts_with("application/json"), "{url}: content-type {ct:?}, body {:?}", String::from_utf8_lossy(&body));
        assert!(body.ends_with(b"\n"), "{url}: JSON bodies end with a newline");
        (status, serde_json::from_slice(&body).unwrap(), started.elapsed())
    })
}

fn dig(port: &str, args: &[&str]) -> String {
    let dig = require_tool("dig", "bind9-dnsutils");
    let mut all = vec!["@127.0.0.1", "-p", port, "+time=3", "+tries=1"];
    all.extend_from_slice(args);
    let out = run(&dig, &all, &[], Duration::from_secs(15));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn naptr_lines(dig_output: &str) -> Vec<String> {
    dig_output.lines().filter(|l| l.contains("\tNAPTR\t") && !l.starts_with(';')).map(str::to_owned).collect()
}

/// Registers the verifier with the client library (a verifier's own setup step).
fn setup_verifier(node: &NvsClient) {
    block_on(async {
        node.call("generate", vec![serde_json::json!(101)]).await.unwrap();
        let addr = node.get_new_address(true).await.unwrap();
        node.name_new("ver:enum", &NameValue::from("E2E verifier\nSRL=4|srl:enum-%02x"), 365, Some(&addr)).await.unwrap();
    });
}

#[test]
fn records_registered_with_the_cli_resolve_over_http_and_dns() {
    let (_devnet, url) = start_devnet();
    let node = client(&url);
    setup_verifier(&node);

    // +15551230001: two signed records in two order groups, a squatter at :2,
    // a signed record hidden behind a gap at :4.
    let s0 = sign(&url, "enum:15551230001:0");
    ness_ok(&url, &["enum", "register", "+1 555 123 0001", "--sig", &s0,
        "--e2u", r"E2U+sip=200|10|!^(.*)$!sip:\1@backup.example!",
        "--e2u", r"E2U+sip=100|20|!^\+1(.*)$!sip:\1@second.example!"]);
    let s1 = sign(&url, "enum:15551230001:1");
    let reg = ness_ok(&url, &["--json", "enum", "register", "+15551230001", "sip:first@primary.example", "--sig", &s1]);
    assert_eq!(serde_json::from_str::<Value>(&reg).unwrap()["name"], "enum:15551230001:1");
    let (_, _, err) = ness(&url, &["enum", "register", "+15551230001", "sip:evil@squatter.example"]);
    assert!(err.contains("unsigned"), "{err}");
    let s4 = sign(&url, "enum:15551230001:4");
    ness_ok(&url, &["enum", "register", "+15551230001", "sip:hidden@gap.example", "--sig", &s4, "--index", "4"]);

    // +15551230002: signed, then revoked by the verifier.
    let s = sign(&url, "enum:15551230002:0");
    ness_ok(&url, &["enum", "register", "+15551230002", "sip:revoked@x.example", "--sig", &s]);
    ness_ok(&url, &["verifier", "revoke", "enum:15551230002:0"]);

    // +15551230003: signed for one day, then 176 blocks pass.
    let s = sign(&url, "enum:15551230003:0");
    ness_ok(&url, &["enum", "register", "+15551230003", "sip:expired@x.example", "--sig", &s, "--days", "1"]);
    block_on(node.call("generate", vec![serde_json::json!(176)])).unwrap();

    // +15551230004: 25 NAPTRs, too many for a 512-byte UDP answer.
    let s = sign(&url, "enum:15551230004:0");
    let mut args = vec!["enum".to_owned(), "register".into(), "+15551230004".into(), "--sig".into(), s];
    for i in 0..25 {
        args.push("--e2u".into());
        args.push(format!("E2U+sip=100|{i}|!^.*$!sip:extension-number-{i:02}@a-rather-long-host-name.example!"));
    }
    ness_ok(&url, &args.iter().map(String::as_str).collect::<Vec<_>>());

    // The CLI resolves like the modules will.
    let out = ness_ok(&url, &["--json", "enum", "lookup", "+15551230001"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let uris: Vec<&str> = v["naptrs"].as_array().unwrap().iter().map(|n| n["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["sip:first@primary.example", "sip:5551230001@second.example", "sip:+15551230001@backup.example"]);
    assert_eq!(v["ignored"][0]["name"], "enum:15551230001:2");
    let (code, _, err) = ness(&url, &["enum", "lookup", "+15551230002"]);
    assert_eq!(code, 1);
    assert!(err.contains("revoked by ver:enum"), "{err}");
    let listed = ness_ok(&url, &["--json", "enum", "list"]);
    assert!(serde_json::from_str::<Value>(&listed).unwrap()["total"].as_u64().unwrap() >= 6);

    let r = start_resolver(&url, "");

    // HTTP, privatenumer-compatible fields.
    let (status, body, _) = get(&format!("{}/enum/lookup?number=%2B15551230001", r.http));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["source"], "node");
    let (_, again, _) = get(&format!("{}/enum/lookup?number=%2B15551230001", r.http));
    let (_, third, _) = get(&format!("{}/enum/lookup?number=%2B15551230001", r.http));
    assert_eq!((again["source"].as_str(), &third), (Some("cache"), &again), "a replayed reply equals the rendered one");
    assert_eq!(body["sip_uri"], "sip:first@primary.example");
    assert_eq!(body["phone_number"], "+15551230001");
    assert_eq!(body["enum_domain"], "1.0.0.0.3.2.1.5.5.5.1.e164.arpa");
    let orders: Vec<(u64, u64)> = body["naptr_records"].as_array().unwrap().iter()
        .map(|n| (n["order"].as_u64().unwrap(), n["preference"].as_u64().unwrap())).collect();
    assert_eq!(orders, [(100, 10), (100, 20), (200, 10)]);
    for key in ["flags", "pattern", "replacement", "service"] {
        assert!(body["naptr_records"][0].get(key).is_some(), "naptr field {key} missing");
    }
    // An unencoded "+" arrives as a space and is understood.
    let (status, body, _) = get(&format!("{}/enum/lookup?number=+15551230001", r.http));
    assert_eq!((status, body["phone_number"].as_str()), (200, Some(" 15551230001")));
    for n in ["15551230002", "15551230003", "15559999999"] {
        let (status, body, _) = get(&format!("{}/enum/lookup?number=%2B{n}", r.http));
        assert_eq!((status, body["status"].as_str()), (404, Some("not_found")), "+{n}: {body}");
    }
    let (status, body, _) = get(&format!("{}/enum/lookup", r.http));
    assert_eq!((status, body["error"].as_str()), (400, Some("Missing required parameter: number")));
    let (status, _, _) = get(&format!("{}/enum/lookup?number=12ab", r.http));
    assert_eq!(status, 400);
    let (status, body, _) = get(&format!("{}/enum/list?limit=2", r.http));
    assert_eq!((status, body["count"].as_u64()), (200, Some(2)));
    let (status, body, _) = get(&format!("{}/health", r.http));
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));

    // DNS, with a real client.
    let port = r.dns_port.as_str();
    let answer = dig(port, &["NAPTR", "1.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert!(answer.contains("status: NOERROR") && answer.contains(" aa "), "{answer}");
    let lines = naptr_lines(&answer);
    assert_eq!(lines.len(), 3, "{answer}");
    assert!(lines[0].contains(r#"100 10 "u" "E2U+sip" "!^.*$!sip:first@primary.example!" ."#), "{}", lines[0]);
    assert!(lines[2].contains(r#"200 10 "u" "E2U+sip" "!^(.*)$!sip:\\1@backup.example!" ."#), "{}", lines[2]);
    let tcp = dig(port, &["+tcp", "NAPTR", "1.0.0.0.3.2.1.5.5.5.1.enum"]);
    assert_eq!(naptr_lines(&tcp).len(), 3, "{tcp}");
    for name in ["2.0.0.0.3.2.1.5.5.5.1.e164.arpa", "3.0.0.0.3.2.1.5.5.5.1.e164.arpa", "9.9.9.9.9.5.5.5.1.e164.arpa", "x.1.e164.arpa"] {
        let a = dig(port, &["NAPTR", name]);
        assert!(a.contains("status: NXDOMAIN") && a.contains("SOA"), "{name}: {a}");
    }
    assert!(dig(port, &["NAPTR", "example.com"]).contains("status: REFUSED"));
    let nodata = dig(port, &["A", "1.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert!(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"), "{nodata}");

    // Replayed answers (UDP front): the question comes back in the asker's case,
    // and a change on the chain shows once the answer's TTL (capped at 2 s) ends.
    let upper = dig(port, &["NAPTR", "1.0.0.0.3.2.1.5.5.5.1.E164.ARPA"]);
    assert!(upper.contains(";1.0.0.0.3.2.1.5.5.5.1.E164.ARPA."), "{upper}");
    assert_eq!(naptr_lines(&upper).len(), 3, "{upper}");
    ness_ok(&url, &["verifier", "revoke", "enum:15551230001:1"]);
    std::thread::sleep(Duration::from_millis(2500));
    let after = dig(port, &["NAPTR", "1.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert_eq!(naptr_lines(&after).len(), 2, "the revoked record's NAPTR must be gone: {after}");

    // Too big for UDP: TC set without EDNS; dig then retries over TCP and gets all.
    let truncated = dig(port, &["+noedns", "+ignore", "NAPTR", "4.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert!(truncated.contains(" tc"), "{truncated}");
    let full = dig(port, &["NAPTR", "4.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert_eq!(naptr_lines(&full).len(), 25, "{full}");
    let edns = dig(port, &["+bufsize=4096", "NAPTR", "4.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert!(edns.contains("EDNS: version: 0") && naptr_lines(&edns).len() == 25, "{edns}");

    // Registration over HTTP needs the operator token; then the record is there.
    let body = serde_json::json!({"phone_number": "+15551230005", "sip_uri": "sip:new@http.example"});
    let (status, reply) = block_on(async {
        let c = reqwest::Client::new();
        let no_token = c.post(format!("{}/enum/register", r.http)).json(&body).send().await.unwrap();
        assert_eq!(no_token.status().as_u16(), 401);
        let r = c.post(format!("{}/enum/register", r.http)).bearer_auth(TOKEN).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["nvs_key"], "enum:15551230005:0");
    assert_eq!(reply["txid"].as_str().unwrap().len(), 64);
    let shown = block_on(node.name_show("enum:15551230005:0")).unwrap().unwrap();
    assert_eq!(shown.value.as_str().unwrap(), "E2U+sip=100|10|!^.*$!sip:new@http.example!");
}

#[test]
fn a_dead_hanging_or_garbage_speaking_node_gives_clear_errors_or_stale_answers_never_a_hang() {
    let (mut devnet, url) = start_devnet();
    let node = client(&url);
    setup_verifier(&node);
    let s = sign(&url, "enum:15551239999:0");
    ness_ok(&url, &["enum", "register", "+15551239999", "sip:cached@x.example", "--sig", &s]);
    let r = start_resolver(&url, "");

    // Cache +15551239999 (TTL capped at 2 s).
    let (status, _, _) = get(&format!("{}/enum/lookup?number=%2B15551239999", r.http));
    assert_eq!(status, 200);

    // A node that speaks garbage (HTTP 200, HTML): 502 for what is not cached.
    assert!(reqwest_fault(&url, "garbage"));
    let (status, body, took) = get(&format!("{}/enum/lookup?number=%2B15551230000", r.http));
    assert_eq!((status, body["status"].as_str()), (502, Some("error")), "{body}");
    assert!(took < Duration::from_secs(3));
    assert!(body["error"].as_str().unwrap().contains("not valid JSON-RPC"), "{body}");

    // A node that accepts and never answers: 503 within the deadline.
    let fault = reqwest_fault(&url, "hang");
    assert!(fault);
    let (status, body, took) = get(&format!("{}/enum/lookup?number=%2B15551230001", r.http));
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let dns = dig(&r.dns_port, &["NAPTR", "1.0.0.0.3.2.1.5.5.5.1.e164.arpa"]);
    assert!(dns.contains("status: SERVFAIL"), "{dns}");

    // A dead node: the cached number is served stale past its TTL, the rest is 503.
    devnet.kill();
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body, took) = get(&format!("{}/enum/lookup?number=%2B15551239999", r.http));
    assert_eq!((status, body["source"].as_str()), (200, Some("stale")), "{body}");
    assert_eq!(body["sip_uri"], "sip:cached@x.example");
    assert!(took < Duration::from_secs(3));
    let (status, body, took) = get(&format!("{}/enum/lookup?number=%2B15551230002", r.http));
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cannot reach the Emercoin node"), "{body}");
    assert!(took < Duration::from_secs(3));
    let (status, body, _) = get(&format!("{}/health", r.http));
    assert_eq!((status, body["emercoin_connected"].as_bool()), (503, Some(false)));
    let stale_dns = dig(&r.dns_port, &["NAPTR", "9.9.9.9.3.2.1.5.5.5.1.e164.arpa"]);
    assert_eq!(naptr_lines(&stale_dns).len(), 1, "{stale_dns}");
    let metrics = block_on(async { reqwest::get(format!("{}/metrics", r.http)).await.unwrap().text().await.unwrap() });
    assert!(metrics.lines().any(|l| l.starts_with("ness_enum_resolver_stale_answers_total ") && !l.ends_with(" 0")), "{metrics}");
}

/// Set a devnet fault with a raw request (a hanging node would not answer the
/// client library's later calls anyway).
fn reqwest_fault(url: &str, fault: &str) -> bool {
    block_on(async {
        let body = serde_json::json!({"jsonrpc":"1.0","id":1,"method":"devnet_fault","params":[fault]});
        let r = reqwest::Client::new().post(url).basic_auth(USER, Some(PASSWORD)).json(&body).send().await.unwrap();
        r.json::<Value>().await.is_ok_and(|v| v["result"] == fault)
    })
}

