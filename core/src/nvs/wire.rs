//! JSON-RPC 1.0 as emercoind speaks it, without I/O: building a request body and
//! turning an HTTP status and body into a result or a typed error.
//!
//! Facts this relies on (docs/emercoin.md §1.3–1.5): replies always carry `result`,
//! `error` and `id`; application errors come with HTTP 500 (or 404 for -32601,
//! 400 for -32600) and a JSON body; 401, 405 and "Work queue depth exceeded" have
//! plain or empty bodies; a single reply may contain raw bytes that are not UTF-8.

use serde_json::Value;

use super::error::{NvsError, rpc_code};

/// Encode one call. Params are positional (emercoind's name methods ignore names).
/// serde_json writes non-ASCII characters raw and control characters as `\u00XX`,
/// which is what emercoind's legacy parser needs (a `\uXXXX` above 0xFF would be
/// cut to one byte).
pub fn encode_request(id: u64, method: &str, params: &[Value]) -> Vec<u8> {
    let body = serde_json::json!({
        "jsonrpc": "1.0",
        "id": id,
        "method": method,
        "params": params,
    });
    serde_json::to_vec(&body).expect("a JSON value always serialises")
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub result: Value,
    /// The body was not valid UTF-8 and invalid bytes were replaced by U+FFFD; values
    /// in `result` may be damaged. Ask again with `valuetype` "base64" if they matter.
    pub lossy: bool,
}

/// Interpret an HTTP reply from emercoind to a call of `method`.
pub fn decode_reply(method: &str, status: u16, body: &[u8]) -> Result<Reply, NvsError> {
    if status == 401 {
        return Err(NvsError::Unauthorized);
    }
    let (text, lossy) = match std::str::from_utf8(body) {
        Ok(t) => (std::borrow::Cow::Borrowed(t), false),
        Err(_) => (String::from_utf8_lossy(body), true),
    };
    let parsed: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            if text.contains("Work queue depth exceeded") {
                return Err(NvsError::Busy);
            }
            return Err(malformed(method, status, format!("not JSON: {}", snippet(&text))));
        }
    };
    let Value::Object(mut obj) = parsed else {
        return Err(malformed(method, status, format!("not a JSON object: {}", snippet(&text))));
    };
    match obj.remove("error") {
        Some(Value::Null) | None => {}
        Some(Value::Object(err)) => {
            let code = err.get("code").and_then(Value::as_i64);
            let message = err.get("message").and_then(Value::as_str).map(str::to_owned);
            return match (code, message) {
                (Some(rpc_code::IN_WARMUP), Some(message)) => Err(NvsError::WarmingUp(message)),
                (Some(rpc_code::IN_INITIAL_DOWNLOAD), Some(_)) => Err(NvsError::Syncing),
                (Some(code), Some(message)) => {
                    Err(NvsError::Rpc { method: method.to_owned(), code, message })
                }
                _ => Err(malformed(method, status, format!("error member without code/message: {}", snippet(&text)))),
            };
        }
        Some(other) => {
            return Err(malformed(method, status, format!("error member is {other}")));
        }
    }
    if status != 200 {
        return Err(malformed(method, status, "HTTP error status without an error member".into()));
    }
    match obj.remove("result") {
        Some(result) => Ok(Reply { result, lossy }),
        None => Err(malformed(method, status, "reply has no result member".into())),
    }
}

fn malformed(method: &str, status: u16, detail: String) -> NvsError {
    NvsError::Malformed { method: method.to_owned(), status, detail }
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    let mut end = t.len().min(120);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    if end < t.len() { format!("{:?}…", &t[..end]) } else { format!("{t:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_non_ascii_raw() {
        let body = encode_request(7, "name_show", &[Value::from("test:é\u{1}")]);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("test:é\\u0001"), "{text}");
        assert!(text.contains("\"id\":7"));
    }

    #[test]
    fn success_and_errors() {
        let ok = decode_reply("getblockcount", 200, br#"{"result":53,"error":null,"id":1}"#).unwrap();
        assert_eq!(ok.result, Value::from(53));
        let missing = decode_reply(
            "name_show",
            500,
            br#"{"result":null,"error":{"code":-4,"message":"failed to read from name DB"},"id":1}"#,
        )
        .unwrap_err();
        assert_eq!(missing.rpc_code(), Some(-4));
        assert_eq!(decode_reply("x", 401, b"").unwrap_err(), NvsError::Unauthorized);
        assert_eq!(decode_reply("x", 500, b"Work queue depth exceeded").unwrap_err(), NvsError::Busy);
        assert!(matches!(
            decode_reply("x", 405, b"JSONRPC server handles only POST requests").unwrap_err(),
            NvsError::Malformed { status: 405, .. }
        ));
        assert!(matches!(
            decode_reply("x", 500, br#"{"result":null,"error":{"code":-28,"message":"Loading wallet..."},"id":1}"#),
            Err(NvsError::WarmingUp(m)) if m == "Loading wallet..."
        ));
        assert_eq!(
            decode_reply("x", 500, br#"{"result":null,"error":{"code":-10,"message":"Emercoin is downloading blocks..."},"id":1}"#),
            Err(NvsError::Syncing)
        );
        assert!(matches!(decode_reply("x", 200, b"[1,2]"), Err(NvsError::Malformed { .. })));
        assert!(matches!(decode_reply("x", 200, b"{\"error\":null}"), Err(NvsError::Malformed { .. })));
        assert!(matches!(decode_reply("x", 502, b"<html>bad gateway</html>"), Err(NvsError::Malformed { status: 502, .. })));
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_and_flagged() {
        let body = b"{\"result\":{\"name\":\"test:hex\",\"value\":\"\xff\\u0000\xfeA\"},\"error\":null,\"id\":1}\n";
        let reply = decode_reply("name_show", 200, body).unwrap();
        assert!(reply.lossy);
        assert_eq!(reply.result["name"], "test:hex");
    }
}
