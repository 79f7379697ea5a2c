//! ptool_conf: what ptool reads from an `emercoin.conf`, printed as one line of
//! compact, key-sorted JSON. Deliberately ptool's rules, not the node's: sections
//! are not honoured and the last value wins. (The node client reads the file the
//! node's way: [`crate::nvs::EmercoinConf`].)

use std::path::Path;

use serde_json::{Map, Value};

use super::receipt::python_json;

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("rpcport in {path} is not a number: {value:?}")]
    Port { path: String, value: String },
}

/// The JSON line ptool_conf prints for the file at `path` (with its newline).
pub fn ptool_conf(path: &Path) -> Result<String, ConfError> {
    let shown = path.to_string_lossy().into_owned();
    let mut out = Map::new();
    out.insert("path".into(), Value::String(shown.clone()));
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(line(out)),
        Err(source) => return Err(ConfError::Read { path: shown, source }),
    };
    let mut values = std::collections::HashMap::new();
    for raw in text.lines() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            values.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    let text_or_null = |k: &str| values.get(k).map_or(Value::Null, |v| Value::String(v.clone()));
    out.insert("datadir".into(), text_or_null("datadir"));
    out.insert("rpcuser".into(), text_or_null("rpcuser"));
    out.insert("rpcpassword".into(), text_or_null("rpcpassword"));
    out.insert(
        "rpcconnect".into(),
        Value::String(values.get("rpcconnect").cloned().unwrap_or_else(|| "127.0.0.1".into())),
    );
    let port = match values.get("rpcport") {
        None => 6662,
        Some(v) => v.parse::<i64>().map_err(|_| ConfError::Port { path: shown.clone(), value: v.clone() })?,
    };
    out.insert("rpcport".into(), Value::from(port));
    Ok(line(out))
}

fn line(map: Map<String, Value>) -> String {
    let mut s = String::new();
    python_json(&Value::Object(map), &mut s);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptool_examples() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("min.conf");
        std::fs::write(&p, "rpcuser=x\n").unwrap();
        let shown = p.to_string_lossy();
        assert_eq!(
            ptool_conf(&p).unwrap(),
            format!(r#"{{"datadir":null,"path":"{shown}","rpcconnect":"127.0.0.1","rpcpassword":null,"rpcport":6662,"rpcuser":"x"}}"#) + "\n"
        );
        // Sections are ignored and the last value wins; inline '#' stays in the value.
        std::fs::write(&p, "# c\nrpcport=6662\n[test]\nrpcport = 16662\nrpcpassword= pw # not a comment\nnoequals\n").unwrap();
        let v: Value = serde_json::from_str(&ptool_conf(&p).unwrap()).unwrap();
        assert_eq!(v["rpcport"], 16662);
        assert_eq!(v["rpcpassword"], "pw # not a comment");
        let missing = dir.path().join("none.conf");
        assert_eq!(ptool_conf(&missing).unwrap(), format!(r#"{{"path":"{}"}}"#, missing.display()) + "\n");
        std::fs::write(&p, "rpcport=abc\n").unwrap();
        assert!(matches!(ptool_conf(&p), Err(ConfError::Port { .. })));
    }
}
