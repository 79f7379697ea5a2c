//! The settings a PBX module takes (Kamailio `modparam`s, Asterisk
//! `privateness.conf`), with one set of names, parsing and checks for both hosts.
//!
//! | key | value | default |
//! |---|---|---|
//! | `node_url` | emercoind JSON-RPC URL | `http://127.0.0.1:6662/` |
//! | `emercoin_conf` | path of emercoin.conf (URL and credentials from it) | — |
//! | `rpc_user`, `rpc_password` | RPC credentials | — |
//! | `cookie_file` | the node's `.cookie` | — |
//! | `timeout_ms` | deadline of one RPC call | 500 |
//! | `lookup_timeout_ms` | deadline of one lookup (all calls) | 1000 |
//! | `cache_size` | numbers cached (per process) | 10000 |
//! | `ttl_cap` | seconds a positive answer is cached at most | 300 |
//! | `negative_ttl` | seconds "no records" is cached | 30 |
//! | `stale_ttl` | seconds an expired answer may serve while the node fails | 3600 |
//! | `verifiers` | trusted verifier names, `|` or `,` separated | `ver:enum` |
//! | `require_signature` | 0 counts unsigned records (test networks only) | 1 |
//! | `privatenumer_layout` | 1 also reads `enum:<reversed>.e164.arpa` | 0 |
//! | `max_records` | records read per number | 32 |
//! | `on_node_failure` | `stale` (serve expired answers) or `fail` | `stale` |

use std::path::PathBuf;
use std::time::Duration;

use crate::enumer::{ResolverConfig, TrustPolicy};
use crate::nvs::{Credentials, NodeConfig};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SettingError {
    #[error("unknown setting {0:?}")]
    Unknown(String),
    #[error("setting {key}: {value:?} is not {want}")]
    Invalid { key: String, value: String, want: &'static str },
    #[error("{0}")]
    Inconsistent(String),
}

/// Module settings, filled key by key.
#[derive(Clone, Debug)]
pub struct ModuleSettings {
    pub node_url: Option<String>,
    pub emercoin_conf: Option<PathBuf>,
    pub rpc_user: Option<String>,
    pub rpc_password: Option<String>,
    pub cookie_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub lookup_timeout_ms: u64,
    pub cache_size: usize,
    pub ttl_cap: u64,
    pub negative_ttl: u64,
    pub stale_ttl: u64,
    pub verifiers: Vec<String>,
    pub require_signature: bool,
    pub privatenumer_layout: bool,
    pub max_records: u32,
    pub serve_stale: bool,
}

impl Default for ModuleSettings {
    fn default() -> Self {
        ModuleSettings {
            node_url: None,
            emercoin_conf: None,
            rpc_user: None,
            rpc_password: None,
            cookie_file: None,
            timeout_ms: 500,
            lookup_timeout_ms: 1000,
            cache_size: 10_000,
            ttl_cap: 300,
            negative_ttl: 30,
            stale_ttl: 3600,
            verifiers: vec!["ver:enum".to_owned()],
            require_signature: true,
            privatenumer_layout: false,
            max_records: 32,
            serve_stale: true,
        }
    }
}

/// The names `set` accepts.
pub const KEYS: &[&str] = &[
    "node_url",
    "emercoin_conf",
    "rpc_user",
    "rpc_password",
    "cookie_file",
    "timeout_ms",
    "lookup_timeout_ms",
    "cache_size",
    "ttl_cap",
    "negative_ttl",
    "stale_ttl",
    "verifiers",
    "require_signature",
    "privatenumer_layout",
    "max_records",
    "on_node_failure",
];

fn number<T: std::str::FromStr + PartialOrd>(key: &str, value: &str, min: T, max: T) -> Result<T, SettingError> {
    match value.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(SettingError::Invalid { key: key.into(), value: value.into(), want: "a number in range" }),
    }
}

fn flag(key: &str, value: &str) -> Result<bool, SettingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(SettingError::Invalid { key: key.into(), value: value.into(), want: "0 or 1 (yes/no)" }),
    }
}

impl ModuleSettings {
    /// Set one key from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let text = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match key {
            "node_url" => {
                let url = text().ok_or_else(|| SettingError::Invalid { key: key.into(), value: value.into(), want: "a URL" })?;
                NodeConfig::new(url.clone(), Credentials::None)
                    .endpoint()
                    .map_err(|_| SettingError::Invalid { key: key.into(), value: value.into(), want: "an http:// URL" })?;
                self.node_url = Some(url);
            }
            "emercoin_conf" => self.emercoin_conf = text().map(PathBuf::from),
            "rpc_user" => self.rpc_user = text(),
            "rpc_password" => self.rpc_password = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "cookie_file" => self.cookie_file = text().map(PathBuf::from),
            "timeout_ms" => self.timeout_ms = number(key, value, 1, 60_000)?,
            "lookup_timeout_ms" => self.lookup_timeout_ms = number(key, value, 1, 60_000)?,
            "cache_size" => self.cache_size = number(key, value, 16, 10_000_000)?,
            "ttl_cap" => self.ttl_cap = number(key, value, 0, 86_400 * 7)?,
            "negative_ttl" => self.negative_ttl = number(key, value, 0, 86_400)?,
            "stale_ttl" => self.stale_ttl = number(key, value, 0, 86_400 * 30)?,
            "verifiers" => {
                self.verifiers = value
                    .split(['|', ','])
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "require_signature" => self.require_signature = flag(key, value)?,
            "privatenumer_layout" => self.privatenumer_layout = flag(key, value)?,
            "max_records" => self.max_records = number(key, value, 1, 1000)?,
            "on_node_failure" => {
                self.serve_stale = match value.trim() {
                    "stale" => true,
                    "fail" => false,
                    _ => {
                        return Err(SettingError::Invalid { key: key.into(), value: value.into(), want: "stale or fail" });
                    }
                }
            }
            other => return Err(SettingError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// Where and how to reach the node.
    pub fn node_config(&self) -> Result<NodeConfig, SettingError> {
        let mut node = match &self.emercoin_conf {
            Some(path) => NodeConfig::from_emercoin_conf(path).map_err(|e| SettingError::Inconsistent(e.to_string()))?,
            None => NodeConfig::new("http://127.0.0.1:6662/", Credentials::None),
        };
        if let Some(url) = &self.node_url {
            node.url = url.clone();
        }
        match (&self.rpc_user, &self.rpc_password, &self.cookie_file) {
            (Some(u), Some(p), _) => node.credentials = Credentials::UserPassword { user: u.clone(), password: p.clone() },
            (_, _, Some(c)) => node.credentials = Credentials::CookieFile(c.clone()),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(SettingError::Inconsistent("set both rpc_user and rpc_password (or cookie_file)".into()));
            }
            (None, None, None) => {}
        }
        if node.credentials == Credentials::None {
            return Err(SettingError::Inconsistent(
                "no RPC credentials: set rpc_user and rpc_password, cookie_file, or emercoin_conf".into(),
            ));
        }
        node.timeout = Duration::from_millis(self.timeout_ms);
        Ok(node)
    }

    pub fn resolver_config(&self) -> Result<ResolverConfig, SettingError> {
        if self.require_signature && self.verifiers.is_empty() {
            return Err(SettingError::Inconsistent(
                "require_signature is on but no verifiers are set: nothing would resolve".into(),
            ));
        }
        Ok(ResolverConfig {
            trust: TrustPolicy { verifiers: self.verifiers.clone(), require_signature: self.require_signature },
            privatenumer_layout: self.privatenumer_layout,
            max_records: self.max_records,
            ttl_cap: Duration::from_secs(self.ttl_cap),
            negative_ttl: Duration::from_secs(self.negative_ttl),
            stale_ttl: Duration::from_secs(self.stale_ttl),
            serve_stale: self.serve_stale,
            cache_capacity: self.cache_size,
            lookup_timeout: Duration::from_millis(self.lookup_timeout_ms),
            ..ResolverConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_check() {
        let mut s = ModuleSettings::default();
        for key in KEYS {
            assert_ne!(s.set(key, "garbage\u{1}"), Err(SettingError::Unknown((*key).into())), "{key}");
        }
        let mut s = ModuleSettings::default();
        s.set("node_url", "http://127.0.0.1:6662/").unwrap();
        s.set("rpc_user", "u").unwrap();
        s.set("rpc_password", "p").unwrap();
        s.set("verifiers", "ver:enum| ver:other ,x").unwrap();
        s.set("on_node_failure", "fail").unwrap();
        s.set("timeout_ms", "250").unwrap();
        assert_eq!(s.verifiers, ["ver:enum", "ver:other", "x"]);
        let node = s.node_config().unwrap();
        assert_eq!(node.timeout, Duration::from_millis(250));
        assert!(!format!("{node:?}").contains("\"p\""));
        assert!(!s.resolver_config().unwrap().serve_stale);
        assert!(matches!(s.set("timeout_ms", "0"), Err(SettingError::Invalid { .. })));
        assert!(matches!(s.set("node_url", "https://x/"), Err(SettingError::Invalid { .. })));
        assert!(matches!(s.set("nope", "1"), Err(SettingError::Unknown(_))));
        let mut t = ModuleSettings::default();
        t.set("rpc_user", "u").unwrap();
        assert!(t.node_config().is_err());
        t.set("verifiers", "").unwrap();
        assert!(t.resolver_config().is_err());
    }
}
