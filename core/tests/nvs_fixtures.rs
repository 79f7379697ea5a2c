//! The client's reply decoding against every reply captured from a real emercoind
//! (tests/fixtures/emercoind): successes decode, errors keep their code and
//! message, plain-text and empty bodies become the right typed errors, and the
//! name methods' results parse into typed entries.

use std::path::PathBuf;

use base64::Engine;
use ness_core::nvs::wire::decode_reply;
use ness_core::nvs::{NvsError, rpc_code};
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emercoind");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 170, "fixtures missing from {}", dir.display());
    out
}

/// The exact body: the JSON text of `response` (as in the file), or the decoded
/// `response_base64`, or `response_text`.
fn body(f: &Value, raw_file: &str) -> Option<Vec<u8>> {
    if let Some(b64) = f.get("response_base64").and_then(Value::as_str) {
        return Some(base64::engine::general_purpose::STANDARD.decode(b64).unwrap());
    }
    if let Some(t) = f.get("response_text").and_then(Value::as_str) {
        return Some(t.as_bytes().to_vec());
    }
    f.get("response")?;
    let start = raw_file.find("\"response\": ").unwrap() + "\"response\": ".len();
    let mut de = serde_json::Deserializer::from_str(&raw_file[start..]);
    let raw: &serde_json::value::RawValue = serde::Deserialize::deserialize(&mut de).unwrap();
    Some(raw.get().as_bytes().to_vec())
}

#[test]
fn every_captured_reply_decodes_to_the_right_outcome() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emercoind");
    let mut checked = 0;
    for (name, f) in fixtures() {
        let raw = std::fs::read_to_string(dir.join(&name)).unwrap();
        let Some(status) = f["http_status"].as_u64() else { continue }; // the crash: no reply
        let status = status as u16;
        let method = f["method"].as_str().unwrap_or("batch");
        let body = body(&f, &raw).unwrap_or_else(|| panic!("{name}: no body"));
        let got = decode_reply(method, status, &body);
        let response = f.get("response");
        match (status, response) {
            (401, _) => assert_eq!(got, Err(NvsError::Unauthorized), "{name}"),
            (_, None) if name.starts_with("work_queue") => assert_eq!(got, Err(NvsError::Busy), "{name}"),
            (_, None) if f.get("response_base64").is_some() => {
                let reply = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(reply.lossy, "{name}: a body that is not UTF-8 must be flagged");
            }
            (_, None) => assert!(matches!(got, Err(NvsError::Malformed { .. })), "{name}: {got:?}"),
            (_, Some(r)) if r.is_array() => {
                // A batch reply is not something the client asks for; it is not an object.
                assert!(matches!(got, Err(NvsError::Malformed { .. })), "{name}: {got:?}");
            }
            (_, Some(r)) if r["error"].is_null() => {
                let reply = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(reply.result, r["result"], "{name}");
            }
            (_, Some(r)) => {
                let e = got.unwrap_err();
                let code = r["error"]["code"].as_i64().unwrap();
                assert_eq!(e.rpc_code(), Some(code), "{name}: {e}");
                if code != rpc_code::IN_INITIAL_DOWNLOAD {
                    assert_eq!(e.rpc_message(), r["error"]["message"].as_str(), "{name}");
                }
                assert_eq!(e.is_node_failure(), code == rpc_code::IN_WARMUP || code == rpc_code::IN_INITIAL_DOWNLOAD, "{name}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 170);
}

#[test]
fn name_show_replies_parse_and_liveness_follows_the_flags() {
    use ness_core::nvs::wire::decode_reply;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emercoind");
    let cases = [
        ("name_show.ok.json", true),
        ("name_show.enum.ok.json", true),
        ("name_show.deleted.ok.json", false),
        ("name_show.expired.ok.json", false),
        ("name_show.expires_at_boundary.ok.json", false),
        ("name_show.reregistered.ok.json", true),
    ];
    for (file, live) in cases {
        let raw = std::fs::read_to_string(dir.join(file)).unwrap();
        let f: Value = serde_json::from_str(&raw).unwrap();
        let reply = decode_reply("name_show", 200, &body(&f, &raw).unwrap()).unwrap();
        let entry = ness_core::nvs::NameEntry::from_reply(&reply.result).unwrap();
        assert_eq!(entry.is_live(), live, "{file}");
        assert_eq!(entry.name, f["params"][0].as_str().unwrap());
    }
}
