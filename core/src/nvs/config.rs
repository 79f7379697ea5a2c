//! Where the node is and how to log in: explicit settings, `emercoin.conf`, or the
//! `.cookie` file the node writes when no rpcpassword is configured.
//!
//! `emercoin.conf` follows Bitcoin Core 0.19's rules (docs/emercoin.md §1.2): `#`
//! starts a comment anywhere on a line; `testnet=1`/`regtest=1` select the network;
//! for test networks `rpcport`, `rpcbind`, `port`, `bind`, `addnode`, `connect` and
//! `wallet` count only inside the `[test]`/`[regtest]` section (or with a
//! `regtest.` prefix), while other keys may also be given at the top.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use crate::emercoin::Network;

/// The RPC port of every Emercoin network unless `rpcport` says otherwise.
pub const DEFAULT_RPC_PORT: u16 = 6662;

/// Default deadline for one RPC call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path}:{line}: expected key=value or [section], found {text:?}")]
    Syntax { path: PathBuf, line: usize, text: String },
    #[error("{path}: both testnet and regtest are enabled; choose one")]
    TwoNetworks { path: PathBuf },
    #[error("the cookie file {path} does not hold user:password")]
    BadCookie { path: PathBuf },
    #[error("invalid node URL {url:?}: it must look like http://127.0.0.1:6662/")]
    BadUrl { url: String },
}

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No Authorization header (the node will answer 401; useful only in tests).
    None,
    UserPassword { user: String, password: String },
    /// Read `user:password` from this file; read again when the node answers 401,
    /// since the node writes a new cookie on every start.
    CookieFile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never appears in logs.
        match self {
            Credentials::None => write!(f, "None"),
            Credentials::UserPassword { user, .. } => write!(f, "UserPassword({user}, <hidden>)"),
            Credentials::CookieFile(p) => write!(f, "CookieFile({})", p.display()),
        }
    }
}

impl Credentials {
    /// The `Authorization` header value, reading the cookie file if there is one.
    pub fn authorization(&self) -> Result<Option<String>, ConfigError> {
        let (user, password) = match self {
            Credentials::None => return Ok(None),
            Credentials::UserPassword { user, password } => (user.clone(), password.clone()),
            Credentials::CookieFile(path) => read_cookie(path)?,
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Some(format!("Basic {token}")))
    }
}

/// Read a `.cookie` file: `__cookie__:<64 hex>`.
pub fn read_cookie(path: &Path) -> Result<(String, String), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Io { path: path.to_owned(), detail: e.to_string() })?;
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_owned(), password.to_owned()))
        }
        _ => Err(ConfigError::BadCookie { path: path.to_owned() }),
    }
}

/// Everything the client needs to reach one node (and optionally one of its wallets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Base URL, e.g. `http://127.0.0.1:6662/`.
    pub url: String,
    /// Wallet name for wallet methods when the node has several (`/wallet/<name>`).
    pub wallet: Option<String>,
    pub credentials: Credentials,
    /// Hard deadline of each call.
    pub timeout: Duration,
}

impl NodeConfig {
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        NodeConfig { url: url.into(), wallet: None, credentials, timeout: DEFAULT_TIMEOUT }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_wallet(mut self, wallet: Option<String>) -> Self {
        self.wallet = wallet;
        self
    }

    /// URL the calls go to: the base URL, plus `wallet/<name>` when a wallet is set.
    pub fn endpoint(&self) -> Result<String, ConfigError> {
        let url = self.url.trim();
        let bad = || ConfigError::BadUrl { url: url.to_owned() };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad());
        }
        let mut out = format!("http://{authority}/{path}");
        if let Some(w) = &self.wallet {
            if !path.is_empty() {
                // The URL already names a path (e.g. /wallet/x); a second wallet is ambiguous.
                return Err(bad());
            }
            out.push_str("wallet/");
            out.push_str(&percent_encode_path(w));
        }
        Ok(out)
    }

    /// Settings from an `emercoin.conf`: `rpcconnect` (default 127.0.0.1), `rpcport`
    /// (default 6662), `rpcuser`/`rpcpassword`, or else the node's `.cookie` file in
    /// the data directory (the conf file's directory unless `datadir=` says otherwise).
    pub fn from_emercoin_conf(path: &Path) -> Result<Self, ConfigError> {
        let conf = EmercoinConf::load(path)?;
        let host = conf.get("rpcconnect").unwrap_or("127.0.0.1").to_owned();
        let port = conf
            .get("rpcport")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(DEFAULT_RPC_PORT);
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
        let credentials = match (conf.get("rpcuser"), conf.get("rpcpassword")) {
            (Some(user), Some(password)) if !password.is_empty() => {
                Credentials::UserPassword { user: user.to_owned(), password: password.to_owned() }
            }
            _ => Credentials::CookieFile(conf.cookie_path()),
        };
        Ok(NodeConfig::new(format!("http://{host}:{port}/"), credentials))
    }
}

/// Percent-encode one URL path segment (unreserved bytes stay as they are).
pub(crate) fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keys that Bitcoin Core 0.17+ honours for test networks only inside their section.
const NETWORK_ONLY: &[&str] = &["rpcport", "rpcbind", "port", "bind", "addnode", "connect", "wallet"];

/// A parsed `emercoin.conf`.
#[derive(Clone, Debug, Default)]
pub struct EmercoinConf {
    /// The file it came from (for the data directory and error messages).
    pub path: PathBuf,
    /// (section, key, value) in file order; section is None at the top.
    entries: Vec<(Option<String>, String, String)>,
}

impl EmercoinConf {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.to_owned(), detail: e.to_string() })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut conf = EmercoinConf { path: path.to_owned(), entries: Vec::new() };
        let mut section: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.trim().to_owned());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::Syntax { path: path.to_owned(), line: i + 1, text: raw.to_owned() });
            };
            let key = key.trim().trim_start_matches('-');
            // "regtest.rpcport=…" is the same as rpcport inside [regtest].
            let (sec, key) = match key.split_once('.') {
                Some((s, k)) => (Some(s.to_owned()), k.to_owned()),
                None => (section.clone(), key.to_owned()),
            };
            conf.entries.push((sec, key, value.trim().to_owned()));
        }
        if conf.top_flag("testnet") && conf.top_flag("regtest") {
            return Err(ConfigError::TwoNetworks { path: path.to_owned() });
        }
        Ok(conf)
    }

    fn top_flag(&self, key: &str) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|(s, k, _)| s.is_none() && k == key)
            .is_some_and(|(_, _, v)| v == "1")
    }

    /// The network the file selects.
    pub fn network(&self) -> Network {
        if self.top_flag("regtest") {
            Network::Regtest
        } else if self.top_flag("testnet") {
            Network::Test
        } else {
            Network::Main
        }
    }

    /// A setting as the node would read it for the selected network (last one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        let net = self.network().name();
        let in_section = self
            .entries
            .iter()
            .rev()
            .find(|(s, k, _)| s.as_deref() == Some(net) && k == key)
            .map(|(_, _, v)| v.as_str());
        if in_section.is_some() {
            return in_section;
        }
        if self.network() != Network::Main && NETWORK_ONLY.contains(&key) {
            return None;
        }
        self.entries.iter().rev().find(|(s, k, _)| s.is_none() && k == key).map(|(_, _, v)| v.as_str())
    }

    /// Data directory: `datadir=` or the directory holding the conf file.
    pub fn data_dir(&self) -> PathBuf {
        match self.get("datadir") {
            Some(d) => PathBuf::from(d),
            None => self.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    /// Where the node writes its cookie: `rpccookiefile` (relative to the network's
    /// directory) or `<datadir>/<network dir>/.cookie`.
    pub fn cookie_path(&self) -> PathBuf {
        let net_dir = self.data_dir().join(self.network().data_subdir());
        match self.get("rpccookiefile") {
            Some(f) => net_dir.join(f),
            None => net_dir.join(".cookie"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> EmercoinConf {
        EmercoinConf::parse(Path::new("/home/op/.emercoin/emercoin.conf"), text).unwrap()
    }

    #[test]
    fn mainnet_user_password() {
        let c = conf("rpcuser=emc # the user\nrpcpassword=secret\nrpcport=7000\n");
        assert_eq!(c.network(), Network::Main);
        assert_eq!(c.get("rpcuser"), Some("emc"));
        assert_eq!(c.get("rpcport"), Some("7000"));
    }

    #[test]
    fn regtest_section_rules() {
        let c = conf("regtest=1\nrpcport=1111\nrpcuser=top\n[regtest]\nrpcpassword=p\n[main]\nrpcport=2222\n");
        assert_eq!(c.network(), Network::Regtest);
        // A top-level rpcport does not apply to regtest; rpcuser does.
        assert_eq!(c.get("rpcport"), None);
        assert_eq!(c.get("rpcuser"), Some("top"));
        assert_eq!(c.get("rpcpassword"), Some("p"));
        let c = conf("regtest=1\nregtest.rpcport=3333\n");
        assert_eq!(c.get("rpcport"), Some("3333"));
        assert_eq!(c.cookie_path(), PathBuf::from("/home/op/.emercoin/regtest/.cookie"));
    }

    #[test]
    fn errors_are_specific() {
        let e = EmercoinConf::parse(Path::new("x.conf"), "rpcuser\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 1, .. }));
        let e = EmercoinConf::parse(Path::new("x.conf"), "testnet=1\nregtest=1\n").unwrap_err();
        assert!(matches!(e, ConfigError::TwoNetworks { .. }));
    }

    #[test]
    fn node_config_from_conf_file_and_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emercoin.conf");
        std::fs::write(&path, "testnet=1\n[test]\nrpcport=6670\n").unwrap();
        let node = NodeConfig::from_emercoin_conf(&path).unwrap();
        assert_eq!(node.url, "http://127.0.0.1:6670/");
        let cookie = dir.path().join("testnet3/.cookie");
        assert_eq!(node.credentials, Credentials::CookieFile(cookie.clone()));
        assert!(matches!(node.credentials.authorization(), Err(ConfigError::Io { .. })));
        std::fs::create_dir_all(cookie.parent().unwrap()).unwrap();
        std::fs::write(&cookie, "__cookie__:abcd").unwrap();
        assert_eq!(
            node.credentials.authorization().unwrap().unwrap(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("__cookie__:abcd"))
        );
        std::fs::write(&cookie, "nocolon").unwrap();
        assert!(matches!(node.credentials.authorization(), Err(ConfigError::BadCookie { .. })));
    }

    #[test]
    fn endpoint_and_redaction() {
        let node = NodeConfig::new("http://127.0.0.1:6662", Credentials::UserPassword {
            user: "u".into(),
            password: "hunter2".into(),
        });
        assert_eq!(node.endpoint().unwrap(), "http://127.0.0.1:6662/");
        let w = node.clone().with_wallet(Some("payer one".into()));
        assert_eq!(w.endpoint().unwrap(), "http://127.0.0.1:6662/wallet/payer%20one");
        let d = node.clone().with_wallet(Some(String::new()));
        assert_eq!(d.endpoint().unwrap(), "http://127.0.0.1:6662/wallet/");
        assert!(!format!("{node:?}").contains("hunter2"));
        assert!(NodeConfig::new("https://x/", Credentials::None).endpoint().is_err());
        assert!(NodeConfig::new("127.0.0.1:6662", Credentials::None).endpoint().is_err());
    }
}
