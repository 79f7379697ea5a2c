//! The resolver's configuration: a TOML file (see dist/enum-resolver.toml), then
//! command-line flags on top.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ness_core::enumer::{ResolverConfig, TrustPolicy};
use ness_core::nvs::{Credentials, NodeConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeSection,
    pub resolver: ResolverSection,
    pub http: HttpSection,
    pub dns: DnsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// JSON-RPC URL of emercoind.
    pub url: Option<String>,
    /// Read URL and credentials from this emercoin.conf instead.
    pub emercoin_conf: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub cookie_file: Option<PathBuf>,
    /// Wallet for `/enum/register` (`/wallet/<name>`) when the node has several.
    pub wallet: Option<String>,
    pub timeout_ms: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            url: None,
            emercoin_conf: None,
            user: None,
            password: None,
            cookie_file: None,
            wallet: None,
            timeout_ms: 1500,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverSection {
    pub verifiers: Vec<String>,
    pub require_signature: bool,
    pub privatenumer_layout: bool,
    pub max_records: u32,
    pub ttl_cap_secs: u64,
    pub negative_ttl_secs: u64,
    pub stale_ttl_secs: u64,
    pub serve_stale: bool,
    pub cache_size: usize,
    pub lookup_timeout_ms: u64,
    pub verifier_ttl_secs: u64,
}

impl Default for ResolverSection {
    fn default() -> Self {
        let d = ResolverConfig::default();
        ResolverSection {
            verifiers: d.trust.verifiers,
            require_signature: d.trust.require_signature,
            privatenumer_layout: d.privatenumer_layout,
            max_records: d.max_records,
            ttl_cap_secs: d.ttl_cap.as_secs(),
            negative_ttl_secs: d.negative_ttl.as_secs(),
            stale_ttl_secs: d.stale_ttl.as_secs(),
            serve_stale: d.serve_stale,
            cache_size: d.cache_capacity,
            lookup_timeout_ms: d.lookup_timeout.as_millis() as u64,
            verifier_ttl_secs: d.verifier_ttl.as_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Where the HTTP API listens; empty disables it.
    pub listen: Option<SocketAddr>,
    /// Bearer token for `POST /enum/register`; unset disables registration.
    pub register_token: Option<String>,
    pub register_token_file: Option<PathBuf>,
    /// Origins allowed by CORS (`*` for any).
    pub cors_origins: Vec<String>,
    /// How long the `/enum/list` scan is reused.
    pub list_cache_secs: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            register_token: None,
            register_token_file: None,
            cors_origins: vec!["*".to_owned()],
            list_cache_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Addresses answered on UDP and TCP; empty disables the DNS server.
    pub listen: Vec<SocketAddr>,
    /// Zones answered: `e164.arpa.` and the emcdns-style `enum.` by default.
    pub zones: Vec<String>,
    /// UDP sockets per address (SO_REUSEPORT), to use every core.
    pub udp_sockets: usize,
    pub tcp_timeout_secs: u64,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            zones: vec!["e164.arpa.".to_owned(), "enum.".to_owned()],
            udp_sockets: std::thread::available_parallelism().map_or(2, |n| n.get()),
            tcp_timeout_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("node settings: {0}")]
    Node(String),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.to_owned(), detail: e.to_string() })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), detail: e.to_string() })?;
        if config.node.password.is_some() || config.http.register_token.is_some() {
            warn_if_readable_by_others(path);
        }
        Ok(config)
    }

    pub fn node_config(&self) -> Result<NodeConfig, ConfigError> {
        let n = &self.node;
        let mut node = match (&n.emercoin_conf, &n.url) {
            (Some(conf), _) => NodeConfig::from_emercoin_conf(conf).map_err(|e| ConfigError::Node(e.to_string()))?,
            (None, Some(url)) => NodeConfig::new(url.clone(), Credentials::None),
            (None, None) => NodeConfig::new("http://127.0.0.1:6662/", Credentials::None),
        };
        if let Some(url) = &n.url {
            node.url = url.clone();
        }
        match (&n.user, &n.password, &n.cookie_file) {
            (Some(u), Some(p), _) => node.credentials = Credentials::UserPassword { user: u.clone(), password: p.clone() },
            (_, _, Some(c)) => node.credentials = Credentials::CookieFile(c.clone()),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(ConfigError::Node("set both user and password, or cookie_file".into()));
            }
            (None, None, None) => {}
        }
        if matches!(node.credentials, Credentials::None) {
            return Err(ConfigError::Node(
                "no RPC credentials: set user and password, cookie_file, or emercoin_conf".into(),
            ));
        }
        node.timeout = Duration::from_millis(n.timeout_ms.max(1));
        node.endpoint().map_err(|e| ConfigError::Node(e.to_string()))?;
        Ok(node)
    }

    pub fn resolver_config(&self) -> ResolverConfig {
        let r = &self.resolver;
        ResolverConfig {
            trust: TrustPolicy { verifiers: r.verifiers.clone(), require_signature: r.require_signature },
            privatenumer_layout: r.privatenumer_layout,
            max_records: r.max_records.max(1),
            ttl_cap: Duration::from_secs(r.ttl_cap_secs),
            negative_ttl: Duration::from_secs(r.negative_ttl_secs),
            stale_ttl: Duration::from_secs(r.stale_ttl_secs),
            serve_stale: r.serve_stale,
            cache_capacity: r.cache_size.max(16),
            lookup_timeout: Duration::from_millis(r.lookup_timeout_ms.max(1)),
            verifier_ttl: Duration::from_secs(r.verifier_ttl_secs),
        }
    }

    /// The register token, from the file if one is named.
    pub fn register_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(path) = &self.http.register_token_file {
            warn_if_readable_by_others(path);
            let t = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read { path: path.clone(), detail: e.to_string() })?;
            let t = t.trim().to_owned();
            if t.len() < 16 {
                return Err(ConfigError::Invalid(format!("{}: the register token must be at least 16 characters", path.display())));
            }
            return Ok(Some(t));
        }
        match &self.http.register_token {
            Some(t) if t.len() < 16 => Err(ConfigError::Invalid("register_token must be at least 16 characters".into())),
            other => Ok(other.clone()),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.resolver.require_signature && self.resolver.verifiers.is_empty() {
            return Err(ConfigError::Invalid(
                "require_signature is on but no verifiers are listed: nothing could ever resolve".into(),
            ));
        }
        for z in &self.dns.zones {
            if !z.ends_with('.') {
                return Err(ConfigError::Invalid(format!("DNS zone {z:?} must end with a dot")));
            }
        }
        Ok(())
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} holds a secret but is readable by group or others; chmod 600 it",
                path.display()
            );
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../dist/enum-resolver.toml");
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.resolver.verifiers, vec!["ver:enum"]);
        assert!(c.node_config().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_settings_are_rejected() {
        assert!(toml::from_str::<Config>("[resolver]\nverifier = [\"x\"]\n").is_err());
        let c: Config = toml::from_str("[resolver]\nverifiers = []\n").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("[node]\nurl = \"http://127.0.0.1:6662/\"\n").unwrap();
        assert!(matches!(c.node_config(), Err(ConfigError::Node(_))));
        let c: Config = toml::from_str("[http]\nregister_token = \"short\"\n").unwrap();
        assert!(c.register_token().is_err());
    }
}
