//! The `[randpay]` section of privateness.conf: the RANDPAY role of this PBX
//! and what it needs. The keys are the Kamailio module's `randpay_*` modparams
//! without the prefix (the prefixed names are accepted too):
//!
//! | key | role | meaning |
//! |---|---|---|
//! | `role` | both | `payee`, `payer` or `off` (default) |
//! | `wallet` | both | the node wallet that issues challenges or pays |
//! | `ledger` | both | SQLite ledger path (default `/var/lib/ness/randpay.db`) |
//! | `tariff` | payee | repeatable: `+49 0.01 risk=100 interval=60 grace=10` |
//! | `side_channel` | payee | `IP:port` the HTTP side channel listens on |
//! | `side_peers` | payee | the payers' IP addresses allowed to use it (`,` separated) |
//! | `payee_url` | payer | the payee's side channel, e.g. `http://10.0.0.2:8481` |
//! | `side_timeout_ms` | payer | deadline of one side-channel request (default 2000) |
//! | `max_price`, `max_risk`, `max_ticket` | payer | what it agrees to pay |

use std::net::{IpAddr, SocketAddr};

use ness_core::randpay::config::KEYS as CORE_KEYS;
use ness_core::randpay::side_channel;
use ness_core::randpay::{RandpayRole, RandpaySettings};

/// The section, checked.
#[derive(Clone, Debug, Default)]
pub struct RandpayConf {
    pub core: RandpaySettings,
    /// Payee: where the side channel listens, and who may use it.
    pub side_channel: Option<(SocketAddr, Vec<IpAddr>)>,
    /// The lines as read, to tell a changed section on reload.
    pub lines: Vec<(String, String)>,
}

/// Keys besides the core's.
const OWN_KEYS: &[&str] = &["side_channel", "side_peers"];

/// Every key the section knows, without the `randpay_` prefix.
pub fn keys() -> Vec<&'static str> {
    CORE_KEYS.iter().map(|k| k.trim_start_matches("randpay_")).chain(OWN_KEYS.iter().copied()).collect()
}

/// Why the section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RandpayConfError {
    #[error("privateness.conf [randpay] line {line}: {why}")]
    Line { line: i32, why: String },
    #[error("privateness.conf [randpay]: {0}")]
    Inconsistent(String),
}

impl RandpayConf {
    /// Build from `(key, value, line)` entries. Unknown keys are returned for a warning.
    pub fn from_entries(entries: &[(String, String, i32)]) -> Result<(RandpayConf, Vec<(String, i32)>), RandpayConfError> {
        let mut c = RandpayConf::default();
        let mut unknown = Vec::new();
        let (mut listen, mut peers) = (None, String::new());
        for (key, value, line) in entries {
            let key = key.trim().to_ascii_lowercase();
            let key = key.trim_start_matches("randpay_");
            let value = value.trim();
            let bad = |why: String| RandpayConfError::Line { line: *line, why };
            c.lines.push((key.to_owned(), value.to_owned()));
            match key {
                "side_channel" => listen = Some((value.to_owned(), *line)),
                "side_peers" => peers = value.to_owned(),
                k if CORE_KEYS.contains(&format!("randpay_{k}").as_str()) => {
                    c.core.set(&format!("randpay_{k}"), value).map_err(|e| bad(e.to_string().replace("randpay_", "")))?
                }
                _ => unknown.push((key.to_owned(), *line)),
            }
        }
        if let Some((l, line)) = listen {
            c.side_channel = Some(side_channel::listen_setting(&l, &peers).map_err(|why| RandpayConfError::Line { line, why })?);
        }
        c.core.check().map_err(|e| RandpayConfError::Inconsistent(e.to_string().replace("randpay_", "")))?;
        match c.core.role {
            RandpayRole::Payee if c.side_channel.is_none() => {
                return Err(RandpayConfError::Inconsistent(
                    "role is payee but side_channel is not set: an Asterisk payee hands out challenges and takes tickets only on its HTTP side channel (docs/randpay.md §2)".into(),
                ));
            }
            _ => {}
        }
        Ok((c, unknown))
    }

    pub fn role(&self) -> RandpayRole {
        self.core.role
    }
}
