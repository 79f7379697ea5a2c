//! The hook's configuration: one TOML file (dialplan/gammu/sms.toml documents every key) read
//! by all subcommands — where the spool lives, where gammu-smsd's own config is, how
//! the forwarder signs and sends, which renter each SIM belongs to, and the modem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub spool: SpoolSection,
    pub gammu: GammuSection,
    pub forward: ForwardSection,
    #[serde(rename = "route")]
    pub routes: Vec<RouteSection>,
    pub modem: ModemSection,
    /// The Lua hooks script (docs/hooks.md): `on_sms(msg)` before sealing.
    pub hooks: Option<HooksSection>,
}

/// `[hooks]`: the same keys as the modules' `hooks_*` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    pub script: PathBuf,
    #[serde(default)]
    pub instructions: Option<u64>,
    #[serde(default)]
    pub memory_kb: Option<u64>,
    /// `["os"]`, `["io"]` or both: libraries the sandbox otherwise lacks.
    #[serde(default)]
    pub allow: Vec<String>,
}

impl HooksSection {
    pub fn settings(&self) -> Result<ness_core::hooks::HookSettings, String> {
        ness_core::hooks::HookSettings::from_parts(&self.script, self.instructions, self.memory_kb, &self.allow.join(",")).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// The SQLite spool. Its directory also holds `fallback/`, where the hook
    /// writes a message as a file if the database cannot take it.
    pub path: PathBuf,
    /// How long the hook waits for the database lock before using the fallback.
    pub busy_timeout_ms: u64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection { path: PathBuf::from("/var/spool/ness-sms/spool.db"), busy_timeout_ms: 2000 }
    }
}

impl SpoolSection {
    pub fn fallback_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join("fallback")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GammuSection {
    /// gammu-smsd's config: the hook reads `service`, `inboxpath`, `inboxformat`,
    /// `dbdir`/`database` and `phoneid` from it, so they are said once.
    pub smsdrc: PathBuf,
}

impl Default for GammuSection {
    fn default() -> Self {
        GammuSection { smsdrc: PathBuf::from("/etc/gammu-smsdrc") }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardSection {
    /// The provider's key file: its Ed25519 private key signs envelopes.
    pub keyfile: Option<PathBuf>,
    /// `/metrics` (Prometheus text). Empty to turn it off.
    pub metrics_listen: Option<SocketAddr>,
    /// A SOCKS5 proxy for every route that does not set its own, e.g.
    /// `socks5h://127.0.0.1:1080` (skysocks-client).
    pub socks5: Option<String>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deadline of one delivery attempt (connect, send, receipt).
    pub timeout_ms: u64,
    /// First retry delay; doubled after each failure, with ±25 % jitter.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// After this long undelivered, a message is held (kept, counted, logged) and
    /// no longer retried until `ness-gammu-hook spool release`.
    pub hold_after_hours: u64,
}

impl Default for ForwardSection {
    fn default() -> Self {
        ForwardSection {
            keyfile: None,
            metrics_listen: None,
            socks5: None,
            concurrency: 32,
            timeout_ms: 10_000,
            retry_initial_ms: 2_000,
            retry_max_ms: 600_000,
            hold_after_hours: 120,
        }
    }
}

impl ForwardSection {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// One renter: the SIMs whose messages go to them, their keys and their inbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// A name for `on_sms` to send messages here (`{renter = "bob"}`); optional.
    #[serde(default)]
    pub name: Option<String>,
    /// gammu PhoneIDs (or modem names) this route takes; `"*"` takes any.
    #[serde(default)]
    pub phone_ids: Vec<String>,
    /// The renter's public key file (x25519.public, ed25519.public) ...
    #[serde(default)]
    pub renter_keyfile: Option<PathBuf>,
    /// ... or the keys themselves, base64url.
    #[serde(default)]
    pub renter_box_pub: Option<String>,
    #[serde(default)]
    pub renter_sign_pub: Option<String>,
    /// The renter inbox's delivery URL, e.g. `http://renter.example:8470/v1/sms`.
    pub inbox_url: String,
    /// Envelope version: 2 (default) or 1 for ptool-only renters.
    #[serde(default = "default_envelope")]
    pub envelope: u8,
    /// Overrides `[forward] socks5`; `"none"` sends directly.
    #[serde(default)]
    pub socks5: Option<String>,
}

fn default_envelope() -> u8 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModemSection {
    pub device: Option<PathBuf>,
    pub baud: u32,
    /// Recorded as the messages' phone id (routes match on it).
    pub phone_id: String,
    /// Message storage to read and delete from: `SM` (SIM), `ME` or `MT`.
    pub storage: String,
    /// Re-list the storage this often even without a `+CMTI`.
    pub poll_secs: u64,
    /// Release an incomplete multipart message after this long, as gammu does.
    pub multipart_timeout_secs: u64,
    /// Deadline for each AT command's final result.
    pub command_timeout_ms: u64,
}

impl Default for ModemSection {
    fn default() -> Self {
        ModemSection {
            device: None,
            baud: 115_200,
            phone_id: String::new(),
            storage: "SM".into(),
            poll_secs: 30,
            multipart_timeout_secs: 600,
            command_timeout_ms: 5_000,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.into(), message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for (i, r) in self.routes.iter().enumerate() {
            let n = i + 1;
            if r.phone_ids.is_empty() && r.name.is_none() {
                return Err(format!("route {n} has no phone_ids (use [\"*\"] for every SIM), nor a name for on_sms to send to"));
            }
            if !matches!(r.envelope, 1 | 2) {
                return Err(format!("route {n}: envelope must be 1 or 2, not {}", r.envelope));
            }
            if r.renter_keyfile.is_none() && (r.renter_box_pub.is_none() || r.renter_sign_pub.is_none()) {
                return Err(format!("route {n} needs renter_keyfile, or both renter_box_pub and renter_sign_pub"));
            }
            if !(r.inbox_url.starts_with("http://") || r.inbox_url.starts_with("https://")) {
                return Err(format!("route {n}: inbox_url must be an http:// URL, not {:?}", r.inbox_url));
            }
        }
        if self.forward.concurrency == 0 {
            return Err("[forward] concurrency must be at least 1".into());
        }
        if self.forward.retry_initial_ms == 0 || self.forward.retry_max_ms < self.forward.retry_initial_ms {
            return Err("[forward] needs 0 < retry_initial_ms <= retry_max_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialplan/gammu/sms.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.routes.is_empty());
        assert_eq!(c.forward.concurrency, 32);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = "[[route]]\nphone_ids = []\ninbox_url = \"http://x/\"\nrenter_keyfile = \"k\"\n";
        let c: Config = toml::from_str(bad).unwrap();
        assert!(c.validate().unwrap_err().contains("route 1 has no phone_ids"));
        let typo = "[spool]\npaht = \"x\"\n";
        assert!(toml::from_str::<Config>(typo).unwrap_err().to_string().contains("paht"));
    }
}
