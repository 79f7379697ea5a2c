//! JSON exactly as the privatenumer backend (Flask 2.3 `jsonify`) writes it, so its
//! clients see the same bytes: keys sorted at every level, compact separators,
//! every non-ASCII character as lowercase `\uXXXX` (surrogate pairs above U+FFFF),
//! and a final newline.

use serde_json::Value;

pub fn to_flask_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, v);
    out.push(b'\n');
    out
}

fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, x);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(out, &m[k]);
            }
            out.push(b'}');
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Fast path: runs of printable ASCII other than '"' and '\\' are copied as they are.
    let bytes = s.as_bytes();
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    let mut start = 0;
    while start < bytes.len() {
        let run = bytes[start..].iter().position(|&b| !plain(b)).unwrap_or(bytes.len() - start);
        out.extend_from_slice(&bytes[start..start + run]);
        start += run;
        if start == bytes.len() {
            break;
        }
        // One character that needs escaping (a char boundary: plain bytes are ASCII).
        let c = s[start..].chars().next().expect("non-empty");
        escape_char(out, c);
        start += c.len_utf8();
    }
    out.push(b'"');
}

fn escape_char(out: &mut Vec<u8>, c: char) {
    {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => out.push(c as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_flask_jsonify() {
        // The exact bytes captured from the original (compat spec A1.4).
        assert_eq!(to_flask_bytes(&json!({"error": "Missing required parameter: number"})), b"{\"error\":\"Missing required parameter: number\"}\n");
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "sip:\u{e9}@x \u{1F600}/"}});
        assert_eq!(
            String::from_utf8(to_flask_bytes(&v)).unwrap(),
            "{\"a\":{\"y\":\"sip:\\u00e9@x \\ud83d\\ude00/\",\"z\":[true,null]},\"b\":1}\n"
        );
    }
}
