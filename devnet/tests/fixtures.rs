//! Replays the replies captured from a real emercoind (tests/fixtures/emercoind/)
//! against the devnet, following the chain story of the capture (its README), and
//! checks for each one: the HTTP status, the body byte for byte where it is plain
//! text, and for JSON the same members in the same order with the same values —
//! except values that are random on any node (txids, addresses, signatures,
//! challenges, times), which must be of the same kind. Every fixture file must be
//! checked; the test fails on any file it did not replay.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine;
use ness_core::emercoin::Address;
use ness_devnet::univalue::{self, Uv};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Fixture {
    method: Option<String>,
    params: Option<Value>,
    wallet: Option<String>,
    request: Option<String>,
    http_method: Option<String>,
    http_status: Option<u16>,
    response: Option<Box<RawValue>>,
    response_text: Option<String>,
    response_base64: Option<String>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emercoind")
}

fn load(name: &str) -> Fixture {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What a fixture's reply is compared with.
enum Reply {
    Http { status: u16, body: Vec<u8> },
    /// The connection closed without an HTTP reply.
    Dropped,
}

struct Replay {
    url: String,
    auth: String,
    http: reqwest::Client,
    checked: BTreeSet<String>,
    /// Strings in fixtures replaced by their devnet counterparts before comparing.
    subs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Replay {
    fn new(handle: &ness_devnet::DevnetHandle) -> Self {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", handle.user, handle.password));
        Replay {
            url: handle.url(),
            auth: format!("Basic {auth}"),
            http: reqwest::Client::new(),
            checked: BTreeSet::new(),
            subs: Vec::new(),
        }
    }

    fn substitute(&mut self, fixture: &str, ours: &str) {
        self.subs.push((fixture.as_bytes().to_vec(), ours.as_bytes().to_vec()));
        self.subs.push((hex::encode(fixture).into_bytes(), hex::encode(ours).into_bytes()));
    }

    async fn post(&self, wallet: Option<&str>, body: Vec<u8>, auth: Option<&str>) -> Reply {
        let url = match wallet {
            Some(w) => format!("{}wallet/{w}", self.url),
            None => self.url.clone(),
        };
        let mut req = self.http.post(url).body(body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        match req.send().await {
            Ok(r) => Reply::Http { status: r.status().as_u16(), body: r.bytes().await.unwrap().to_vec() },
            Err(_) => Reply::Dropped,
        }
    }

    /// Call a method directly (for steps that are not fixtures).
    async fn rpc(&self, wallet: Option<&str>, method: &str, params: Value) -> Uv {
        let body = serde_json::to_vec(&json!({"jsonrpc":"1.0","id":1,"method":method,"params":params})).unwrap();
        let Reply::Http { body, .. } = self.post(wallet, body, Some(&self.auth)).await else { panic!("{method}: no reply") };
        let v = univalue::parse(body.strip_suffix(b"\n").unwrap_or(&body)).unwrap();
        assert_eq!(v.get("error"), Some(&Uv::Null), "{method} {params}: {}", String::from_utf8_lossy(&body));
        v.get("result").unwrap().clone()
    }

    async fn rpc_str(&self, wallet: Option<&str>, method: &str, params: Value) -> String {
        match self.rpc(wallet, method, params).await {
            Uv::Str(s) => String::from_utf8(s).unwrap(),
            other => panic!("{method}: expected a string, got {other:?}"),
        }
    }

    /// Replay fixture `name` (with `params` instead of the recorded ones, if given)
    /// and compare. Returns the devnet's `result`.
    async fn check(&mut self, name: &str, params: Option<Value>) -> Uv {
        let reply = self.send_fixture(name, params).await;
        self.verify(name, reply)
    }

    async fn send_fixture(&self, name: &str, params: Option<Value>) -> Reply {
        let f = load(name);
        if f.http_method.as_deref() == Some("GET") {
            let r = self.http.get(&self.url).header("Authorization", &self.auth).send().await.unwrap();
            return Reply::Http { status: r.status().as_u16(), body: r.bytes().await.unwrap().to_vec() };
        }
        let body = match (&params, &f.request) {
            (None, Some(raw)) => raw.clone().into_bytes(),
            _ => {
                let p = params.clone().or(f.params.clone()).unwrap_or(json!([]));
                let m = f.method.clone().unwrap();
                serde_json::to_vec(&json!({"jsonrpc":"1.0","id":1,"method":m,"params":p})).unwrap()
            }
        };
        let auth = if name.starts_with("auth.missing") {
            None
        } else if name.starts_with("auth.wrong") {
            Some("Basic ZW1jdXNlcjp3cm9uZw==".to_owned())
        } else {
            Some(self.auth.clone())
        };
        self.post(f.wallet.as_deref(), body, auth.as_deref()).await
    }

    /// A call whose reply is judged by the caller (and maybe verified later).
    async fn raw_call(&self, wallet: Option<&str>, method: &str, params: Value) -> Reply {
        let body = serde_json::to_vec(&json!({"jsonrpc":"1.0","id":1,"method":method,"params":params})).unwrap();
        self.post(wallet, body, Some(&self.auth)).await
    }

    /// Compare a reply with fixture `name`; returns the devnet's `result`.
    fn verify(&mut self, name: &str, reply: Reply) -> Uv {
        self.checked.insert(name.to_owned());
        let f = load(name);
        let (status, body) = match reply {
            Reply::Dropped => {
                assert_eq!(f.http_status, None, "{name}: the devnet dropped the connection, the node answered");
                return Uv::Null;
            }
            Reply::Http { status, body } => (status, body),
        };
        assert_eq!(Some(status), f.http_status, "{name}: HTTP status; body {}", String::from_utf8_lossy(&body));
        if let Some(text) = &f.response_text {
            assert_eq!(String::from_utf8_lossy(&body), *text, "{name}: body");
            return Uv::Null;
        }
        assert!(body.ends_with(b"\n"), "{name}: body must end with a newline");
        let actual = univalue::parse(&body[..body.len() - 1]).unwrap_or_else(|_| panic!("{name}: devnet sent bad JSON"));
        let expected_bytes = match (&f.response, &f.response_base64) {
            (Some(raw), _) => raw.get().as_bytes().to_vec(),
            (None, Some(b64)) => {
                let mut b = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
                b.pop();
                b
            }
            _ => panic!("{name}: fixture without a response"),
        };
        let expected = univalue::parse(&expected_bytes).unwrap();
        self.compare(name, "", &expected, &actual);
        actual.get("result").cloned().unwrap_or(Uv::Null)
    }

    fn compare(&mut self, name: &str, path: &str, e: &Uv, a: &Uv) {
        let key = path.rsplit('.').next().unwrap_or("");
        match (e, a) {
            (Uv::Obj(em), Uv::Obj(am)) => {
                let ek: Vec<_> = em.iter().map(|(k, _)| k.as_str()).collect();
                let ak: Vec<_> = am.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(ek, ak, "{name}: members of {path:?}");
                for ((k, ev), (_, av)) in em.iter().zip(am) {
                    self.compare(name, &format!("{path}.{k}"), ev, av);
                }
            }
            (Uv::Arr(ea), Uv::Arr(aa)) => {
                assert_eq!(ea.len(), aa.len(), "{name}: length of {path:?}: {a:?}");
                for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                    let k = if key.is_empty() { "[]".to_owned() } else { key.to_owned() };
                    self.compare(name, &format!("{path}[{i}].{k}"), ev, av);
                }
            }
            (Uv::Str(es), Uv::Str(as_)) => {
                let mut es = es.clone();
                for (from, to) in &self.subs {
                    es = replace(&es, from, to);
                }
                if es != *as_ && same_kind(key, &es, as_) {
                    // Later replies may quote this value (e.g. a txid in an error).
                    if es.len() == 64 {
                        self.subs.push((es.clone(), as_.clone()));
                    }
                } else if es != *as_ {
                    panic!("{name}: {path} expected {:?}, devnet {:?}", String::from_utf8_lossy(&es), String::from_utf8_lossy(as_));
                }
            }
            (Uv::Num(en), Uv::Num(an)) => {
                const LOOSE: &[&str] = &[
                    "time", "mediantime", "difficulty", "size_on_disk", "vout", "keypoololdest", "balance",
                    "newmint", "moneysupply", "pow-difficulty", "pos-difficulty", "bytes_name", "stake",
                ];
                let loose = LOOSE.contains(&key) || (key == "result" && name.starts_with("getbalance"));
                assert!(en == an || loose, "{name}: {path} expected {en}, devnet {an}");
            }
            _ => assert_eq!(e, a, "{name}: {path}"),
        }
    }
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Values random on any node: equal kinds suffice.
fn same_kind(key: &str, e: &[u8], a: &[u8]) -> bool {
    let (Ok(e), Ok(a)) = (std::str::from_utf8(e), std::str::from_utf8(a)) else { return false };
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let addr = |s: &str| Address::parse(s).ok().map(|x| x.kind);
    let sig = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).is_ok_and(|b| b.len() == 65);
    let chap = |s: &str| {
        let p: Vec<_> = s.split(':').collect();
        (p.len() == 3 && p[2].len() == 40 && hex(p[2])).then(|| format!("{}:{}", p[0], p[1]))
    };
    const RANDOM_KEYS: &[&str] = &[
        "txid", "address", "bestblockhash", "bestblock", "hash_name", "chainwork", "fullversion", "sending to",
        "transaction", "witness_program", "hex", "asm", "addresses", "[]", "result",
    ];
    if !RANDOM_KEYS.contains(&key) {
        return false;
    }
    (hex(e) && hex(a) && (e.len() == a.len() || e.len() > 64 && a.len() > 64))
        || (addr(e).is_some() && addr(e) == addr(a))
        || (sig(e) && sig(a))
        || (chap(e).is_some() && chap(e) == chap(a))
        || (key == "asm" && e.split(' ').count() == a.split(' ').count())
        || (key == "hex" && e.len() == a.len())
        || (key == "fullversion" && e.starts_with("v0.8.6.0-") && a.starts_with("v0.8.6.0-"))
}

async fn devnet(disable_wallet: bool) -> ness_devnet::DevnetHandle {
    ness_devnet::start(ness_devnet::DevnetConfig {
        credentials: Some(("emcuser".into(), "emcpass".into())),
        disable_wallet,
        mocktime: Some(1_895_299_035),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_captured_reply_is_reproduced() {
    let handle = devnet(false).await;
    let mut r = Replay::new(&handle);

    // Height 0: initial block download; the node starting; transport errors.
    r.check("name_show.initial_block_download.error.json", None).await;
    r.check("name_new.initial_block_download.error.json", None).await;
    handle.with_node(|n| n.fault = ness_devnet::Fault::Warmup("Verifying wallet(s)...".into()));
    r.check("getblockcount.warmup.error.json", None).await;
    handle.with_node(|n| n.fault = ness_devnet::Fault::Busy);
    r.check("work_queue_depth_exceeded.500.json", None).await;
    handle.with_node(|n| n.fault = ness_devnet::Fault::None);
    for f in [
        "auth.missing.401.json",
        "auth.wrong_password.401.json",
        "http_get.405.json",
        "malformed_body.parse_error.json",
        "invalid_request.not_an_object.error.json",
        "invalid_request.missing_method.400.json",
        "unknown_method.error.json",
        "getnetworkinfo.ok.json",
        "sendrawtransaction.bad_param_type.error.json",
        "name_indexinfo.out_of_range.error.json",
    ] {
        r.check(f, None).await;
    }

    // Heights 1-53, then a payer wallet funded by block 54.
    r.rpc(Some(""), "generate", json!([53])).await;
    for f in ["getblockcount.ok.json", "getblockcount.no_id.ok.json", "getblockcount.string_id.ok.json", "getblockcount.extra_param.error.json", "batch.mixed.ok.json"] {
        r.check(f, None).await;
    }
    r.rpc(None, "createwallet", json!(["payer"])).await;
    let payer_legacy = r.rpc_str(Some("payer"), "getnewaddress", json!(["", "legacy"])).await;
    r.rpc(None, "generatetoaddress", json!([1, payer_legacy])).await;
    r.check("getblockchaininfo.ok.json", None).await;
    r.check("getinfo.ok.json", None).await;
    r.check("getinfo.no_wallet_selected.crash.json", None).await;
    r.check("getbalance.wallet_not_specified.error.json", None).await;
    r.check("getbalance.wallet_not_found.error.json", None).await;

    // Block 55: names, with the mempool visible between operations.
    r.check("name_new.ok.json", None).await;
    r.check("name_show.pending.error.json", None).await;
    r.check("name_new.pending_operation.error.json", None).await;
    r.check("name_update.pending_operation.error.json", None).await;
    r.check("name_new.valuetype_hex.ok.json", None).await;
    r.check("name_mempool.non_utf8.ok.json", None).await;
    r.check("name_mempool.hex.ok.json", None).await;
    r.check("name_new.valuetype_base64.ok.json", None).await;
    let to = json!(["test:to", "owned by payer", 30, payer_legacy]);
    r.check("name_new.toaddress.ok.json", Some(to)).await;
    r.check("name_new.history_op1.ok.json", None).await;
    r.check("name_new.for_delete.ok.json", None).await;
    r.check("name_new.one_day.ok.json", None).await;
    r.check("name_new.verifier.ok.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;

    // Block 56: the signed ENUMER record, an update, a delete.
    let verifier = match r.rpc(None, "name_show", json!(["ver:enum"])).await.get("address") {
        Some(Uv::Str(a)) => String::from_utf8(a.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    r.substitute("emrt1q7380rj7zdyy44z3vzcxn7m3rvf2hx0a8875x92", &verifier);
    let sig = r.check("signmessage.ok.json", Some(json!([verifier, "enum:15551234567:0"]))).await;
    let sig = String::from_utf8(sig.as_bytes().unwrap().to_vec()).unwrap();
    r.substitute("Hwks92Mt5gdg9RfgAdSlwWYYkXaHIQutG0heJqU7BFoxCvXu+vpgw0fXzZI6T7Se8sWB/OMPLdEv+KlBvG/nqBY=", &sig);
    r.check("verifymessage.ok.json", Some(json!([verifier, sig, "enum:15551234567:0"]))).await;
    r.check("verifymessage.wrong_message.ok.json", Some(json!([verifier, sig, "enum:15551234567:1"]))).await;
    r.check("verifymessage.wrong_address.ok.json", Some(json!([payer_legacy, sig, "enum:15551234567:0"]))).await;
    r.check("verifymessage.malformed_base64.error.json", None).await;
    r.check("verifymessage.invalid_address.error.json", None).await;
    let value = format!("E2U+sip=100|10|!^(.*)$!sip:\\1@example.net!\nSIG=ver:enum|{sig}");
    r.check("name_new.enum.ok.json", Some(json!(["enum:15551234567:0", value, 365]))).await;
    r.check("name_update.ok.json", None).await;
    r.check("name_delete.ok.json", None).await;
    r.check("name_mempool.ok.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;
    r.check("name_show.deleted.ok.json", None).await;
    r.check("name_history.fullhistory.ok.json", None).await;
    r.check("name_history.inactive.error.json", None).await;
    r.check("name_update.inactive_name.error.json", None).await;

    // Blocks 57 and 58.
    r.check("name_update.history_op3.ok.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;
    r.check("name_new.utf8_value.ok.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;

    // Reads at height 58.
    for f in [
        "name_show.ok.json",
        "name_show.enum.ok.json",
        "name_show.verifier.ok.json",
        "name_show.toaddress.ok.json",
        "name_show.hex.ok.json",
        "name_show.base64.ok.json",
        "name_show.base64_stored.ok.json",
        "name_show.utf8.ok.json",
        "name_show.non_utf8_raw.ok.json",
        "name_show.unicode_escape_request.ok.json",
        "name_show.missing.error.json",
        "name_show.no_params.error.json",
        "name_filter.all.ok.json",
        "name_filter.regexp.ok.json",
        "name_filter.maxage.ok.json",
        "name_filter.paging.ok.json",
        "name_filter.stat.ok.json",
        "name_filter.valuetype_hex.ok.json",
        "name_filter.max_value_length.ok.json",
        "name_filter.bad_param_type.error.json",
        "name_scan.all.ok.json",
        "name_scan.hex.ok.json",
        "name_scan.start_name.ok.json",
        "name_scan.max_count.ok.json",
        "name_scan_address.no_index.error.json",
        "name_list.ok.json",
        "name_list.hex.ok.json",
        "name_list.one_name.ok.json",
        "name_list.payer.ok.json",
        "name_history.ok.json",
        "name_history.hex.ok.json",
        "name_history.missing.error.json",
        "name_indexinfo.ok.json",
        "name_indexinfo.main.ok.json",
        "batch.non_ascii.ok.json",
        "name_new.unexpired_name.error.json",
        "name_new.name_too_long.error.json",
        "name_new.value_too_long.error.json",
        "name_new.name_and_value_too_long.error.json",
        "name_new.empty_value.error.json",
        "name_new.zero_days.error.json",
        "name_new.negative_days.error.json",
        "name_new.days_too_large.error.json",
        "name_new.days_string.error.json",
        "name_new.invalid_address.error.json",
        "name_new.bad_hex.error.json",
        "name_new.bad_base64.error.json",
        "name_new.valuetype_file_missing.error.json",
        "name_new.missing_params.error.json",
        "name_update.not_owner.error.json",
        "name_update.missing_name.error.json",
        "name_update.negative_days.error.json",
        "name_delete.not_owner.error.json",
        "name_delete.missing_name.error.json",
        "sendtoname.ok.json",
        "sendtoname.missing.error.json",
        "getnewaddress.ok.json",
        "getnewaddress.legacy.ok.json",
        "signmessage.invalid_address.error.json",
        "signmessage.not_in_wallet.error.json",
        "getbalance.ok.json",
        "getbalance.payer.ok.json",
    ] {
        r.check(f, None).await;
    }
    let bech = r.rpc_str(Some(""), "getnewaddress", json!([])).await;
    r.check("validateaddress.bech32.ok.json", Some(json!([bech]))).await;
    r.check("validateaddress.legacy.ok.json", Some(json!([payer_legacy]))).await;
    r.check("validateaddress.invalid.ok.json", None).await;

    // Wallets unloaded and loaded again.
    r.rpc(None, "unloadwallet", json!(["payer"])).await;
    r.rpc(None, "unloadwallet", json!([""])).await;
    for f in ["getbalance.no_wallet_loaded.error.json", "name_new.no_wallet_loaded.error.json", "name_history.no_wallet_loaded.error.json", "randpay_accept.no_wallet_loaded.error.json"] {
        r.check(f, None).await;
    }
    r.check("loadwallet.ok.json", None).await;
    r.rpc(None, "loadwallet", json!(["payer"])).await;

    // Heights 230-232: test:exp expires (one day = 175 blocks from 55) and comes back.
    r.rpc(Some(""), "generate", json!([230 - 58])).await;
    r.check("name_show.expires_at_boundary.ok.json", None).await;
    r.check("name_history.expires_at_boundary.ok.json", None).await;
    r.check("name_new.expires_at_boundary.error.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;
    for f in ["name_show.expired.ok.json", "name_filter.expired.ok.json", "name_scan.expired.ok.json", "name_list.expired.ok.json", "name_history.expired.error.json", "name_update.expired_name.error.json"] {
        r.check(f, None).await;
    }
    r.check("name_new.after_expiry.ok.json", None).await;
    r.rpc(Some(""), "generate", json!([1])).await;
    r.check("name_show.reregistered.ok.json", None).await;
    r.check("name_history.two_chains.ok.json", None).await;
    r.check("name_history.two_chains_fullhistory.ok.json", None).await;

    // RANDPAY from height 233: payee = default wallet, payer = "payer".
    r.rpc(Some(""), "generate", json!([1])).await;
    randpay(&mut r).await;

    // Heights 235/236: reading with a file path, a transfer, no wallet loaded.
    r.rpc(Some(""), "generate", json!([2])).await;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("name_show_out.bin");
    r.check("name_show.filepath.ok.json", Some(json!(["test:a", "", path.to_str().unwrap()]))).await;
    assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    let payer_bech = r.rpc_str(Some("payer"), "getnewaddress", json!([])).await;
    r.check("name_update.toaddress.ok.json", Some(json!(["test:b64", "moved", 0, payer_bech]))).await;
    r.rpc(Some(""), "generate", json!([1])).await;
    r.check("name_show.transferred.ok.json", None).await;
    r.rpc(None, "unloadwallet", json!(["payer"])).await;
    r.rpc(None, "unloadwallet", json!([""])).await;
    r.check("name_show.no_wallet_loaded.ok.json", None).await;

    // A node started with -disablewallet.
    let disabled = devnet(true).await;
    let mut d = Replay::new(&disabled);
    d.check("getbalance.wallet_disabled.error.json", None).await;
    r.checked.extend(d.checked);

    let all: BTreeSet<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let missed: Vec<_> = all.difference(&r.checked).collect();
    assert!(missed.is_empty(), "fixtures not replayed: {missed:?}");
    disabled.stop().await;
    handle.stop().await;
}

async fn randpay(r: &mut Replay) {
    // Tickets for risk-6 challenges until one wins and one loses (p = 1/6 each).
    let (mut won, mut lost) = (None, None);
    for i in 0..400 {
        let chap = if i == 0 {
            r.check("randpay_mkchap.ok.json", None).await
        } else {
            r.rpc(Some(""), "randpay_mkchap", json!([0.5, 6, 60])).await
        };
        let chap = String::from_utf8(chap.as_bytes().unwrap().to_vec()).unwrap();
        let ticket = if i == 0 {
            r.check("randpay_mktx.ok.json", Some(json!([chap, 60, 2]))).await
        } else {
            r.rpc(Some("payer"), "randpay_mktx", json!([chap, 60, 2])).await
        };
        let hex = String::from_utf8(ticket.as_bytes().unwrap().to_vec()).unwrap();
        let reply = r.raw_call(Some(""), "randpay_accept", json!([hex])).await;
        let Reply::Http { body, .. } = &reply else { panic!("randpay_accept: no reply") };
        let parsed = univalue::parse(&body[..body.len() - 1]).unwrap();
        let result = parsed.get("result").unwrap();
        if result.get("won") == Some(&Uv::Bool(true)) {
            if won.is_none() {
                r.verify("randpay_accept.won.ok.json", reply);
                won = Some(hex);
            }
        } else if lost.is_none() {
            r.verify("randpay_accept.lost.ok.json", reply);
            lost = Some(hex);
        }
        if won.is_some() && lost.is_some() {
            break;
        }
    }
    let (won, lost) = (won.expect("no ticket won in 400 tries"), lost.expect("no ticket lost in 400 tries"));
    r.check("randpay_accept.replay_after_win.error.json", Some(json!([won]))).await;
    r.check("randpay_accept.replay_after_loss.error.json", Some(json!([lost]))).await;
    r.check("sendrawtransaction.lost_ticket.error.json", Some(json!([lost]))).await;
    let chap = r.rpc_str(Some(""), "randpay_mkchap", json!([0.5, 6, 60])).await;
    r.check("randpay_mktx.lost_ticket.ok.json", Some(json!([chap, 60, 2]))).await;

    let unknown = "0.50:6:1234567890abcdef1234567890abcdef12345678";
    let hex = r.rpc_str(Some("payer"), "randpay_mktx", json!([unknown, 60, 2])).await;
    r.check("randpay_accept.unknown_chap.error.json", Some(json!([hex]))).await;

    let chap = r.check("randpay_mkchap.timeout1.ok.json", None).await;
    let chap = String::from_utf8(chap.as_bytes().unwrap().to_vec()).unwrap();
    let hex = r.rpc_str(Some("payer"), "randpay_mktx", json!([chap, 60, 2])).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    r.check("randpay_accept.expired_chap.ok.json", Some(json!([hex]))).await;

    let chap = r.rpc_str(Some(""), "randpay_mkchap", json!([0.5, 1, 60])).await;
    let hex = r.rpc_str(Some("payer"), "randpay_mktx", json!([chap, 60, 2])).await;
    r.check("randpay_accept.won_flags3.ok.json", Some(json!([hex, 3]))).await;

    let chap = r.rpc_str(Some(""), "randpay_mkchap", json!([0.5, 1, 60])).await;
    let lowered = chap.replacen("0.50:", "0.40:", 1);
    let hex = r.rpc_str(Some("payer"), "randpay_mktx", json!([lowered, 60, 2])).await;
    r.check("randpay_accept.underpaid_flags1.ok.json", Some(json!([hex, 1]))).await;

    let chap = r.rpc_str(Some(""), "randpay_mkchap", json!([0.5, 1, 60])).await;
    let hex = r.check("randpay_mktx.default_flags.ok.json", Some(json!([chap, 60]))).await;
    let hex = String::from_utf8(hex.as_bytes().unwrap().to_vec()).unwrap();
    r.check("randpay_accept.default_mode_nonstandard.error.json", Some(json!([hex]))).await;

    for f in [
        "randpay_accept.garbage_hex.error.json",
        "randpay_accept.truncated_hex.error.json",
        "randpay_mkchap.risk1.ok.json",
        "randpay_mkchap.risk1000000.ok.json",
        "randpay_mkchap.zero_amount.error.json",
        "randpay_mkchap.zero_risk.error.json",
        "randpay_mkchap.bad_risk_type.error.json",
        "randpay_mkchap.missing_params.error.json",
        "randpay_mktx.bad_chap.error.json",
        "randpay_mktx.bad_chap_one_colon.error.json",
        "randpay_mktx.zero_risk.error.json",
        "randpay_mktx.zero_amount.error.json",
        "randpay_mktx.bad_flags_type.error.json",
        "randpay_mktx.bad_timeout_type.error.json",
        "randpay_mktx.insufficient_funds.error.json",
    ] {
        r.check(f, None).await;
    }
    let chap = r.rpc_str(Some(""), "randpay_mkchap", json!([0.5, 1, 60])).await;
    let hex = r.rpc_str(Some("payer"), "randpay_mktx", json!([chap, 60, 2])).await;
    r.check("randpay_accept.bad_flags_type.error.json", Some(json!([hex, "3"]))).await;

    // Lock the payer's coins with outstanding tickets until fewer than 15 EMC are
    // free (earlier losing tickets may hold some already): a 20 EMC ticket then
    // finds too few unlocked coins although the balance covers it (-4, not -6).
    let mut locked_out = false;
    for _ in 0..1000 {
        let reply = r.raw_call(Some("payer"), "randpay_mktx", json!(["15:1000000:1234567890abcdef1234567890abcdef12345678", 60, 2])).await;
        let Reply::Http { body, .. } = reply else { panic!("randpay_mktx: no reply") };
        let v = univalue::parse(&body[..body.len() - 1]).unwrap();
        if v.get("error").and_then(|e| e.get("code")) == Some(&Uv::int(-4)) {
            locked_out = true;
            break;
        }
    }
    assert!(locked_out, "the payer's coins never ran out");
    let balance = r.rpc(Some("payer"), "getbalance", json!([])).await.as_f64().unwrap();
    assert!(balance >= 20.0, "the fixture needs a balance above the ticket (got {balance})");
    r.check("randpay_mktx.funds_locked.error.json", None).await;
}

