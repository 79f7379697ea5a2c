//! RANDPAY settings as the PBX modules take them (Kamailio modparams, Asterisk's
//! privateness.conf `[randpay]`), with one set of names for both hosts:
//!
//! | key | value | default |
//! |---|---|---|
//! | `randpay_role` | `payee`, `payer` or `off` | `off` |
//! | `randpay_wallet` | the node wallet that issues challenges (payee) or pays (payer) | the node's default |
//! | `randpay_ledger` | path of the SQLite ledger | `/var/lib/ness/randpay.db` |
//! | `randpay_tariff` | payee, repeatable: `+49 0.01 risk=100 interval=60 grace=10` | — |
//! | `randpay_max_price` | payer: most EMC per minute it pays | `0.05` |
//! | `randpay_max_risk` | payer: highest risk it accepts | `1000` |
//! | `randpay_max_ticket` | payer: most EMC one ticket may lock | `10` |
//! | `randpay_payee_url` | payer: the payee's HTTP side channel, e.g. `http://10.0.0.2:8481` | — |
//! | `randpay_side_timeout_ms` | payer: deadline of one side-channel request, 100–60000 | `2000` |
//!
//! The node (URL, credentials) is the module's own `node_url`/`emercoin_conf`/….

use std::path::PathBuf;
use std::time::Duration;

use super::meter::PayerPolicy;
use super::tariff::{Amount, Tariff, TariffError, TariffTable};
use crate::settings::SettingError;

/// Which side of the payment this PBX takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandpayRole {
    Off,
    Payee,
    Payer,
}

#[derive(Clone, Debug)]
pub struct RandpaySettings {
    pub role: RandpayRole,
    pub wallet: Option<String>,
    pub ledger: PathBuf,
    pub tariffs: Vec<Tariff>,
    pub policy: PayerPolicy,
    /// Payer: the payee's side channel (docs/randpay.md §2), when it pays there.
    pub payee_url: Option<String>,
    pub side_timeout: Duration,
}

impl Default for RandpaySettings {
    fn default() -> Self {
        RandpaySettings {
            role: RandpayRole::Off,
            wallet: None,
            ledger: PathBuf::from("/var/lib/ness/randpay.db"),
            tariffs: Vec::new(),
            policy: PayerPolicy {
                max_price_per_minute: Amount(50_000),
                max_risk: 1000,
                max_ticket: Amount(10 * Amount::COIN),
            },
            payee_url: None,
            side_timeout: Duration::from_millis(2000),
        }
    }
}

/// The names `set` accepts.
pub const KEYS: &[&str] = &[
    "randpay_role",
    "randpay_wallet",
    "randpay_ledger",
    "randpay_tariff",
    "randpay_max_price",
    "randpay_max_risk",
    "randpay_max_ticket",
    "randpay_payee_url",
    "randpay_side_timeout_ms",
];

fn invalid(key: &str, value: &str, want: &'static str) -> SettingError {
    SettingError::Invalid { key: key.into(), value: value.into(), want }
}

impl RandpaySettings {
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let v = value.trim();
        match key {
            "randpay_role" => {
                self.role = match v {
                    "off" | "" => RandpayRole::Off,
                    "payee" => RandpayRole::Payee,
                    "payer" => RandpayRole::Payer,
                    _ => return Err(invalid(key, value, "payee, payer or off")),
                }
            }
            "randpay_wallet" => self.wallet = Some(v.to_owned()).filter(|w| !w.is_empty()),
            "randpay_ledger" => {
                if v.is_empty() {
                    return Err(invalid(key, value, "a file path"));
                }
                self.ledger = PathBuf::from(v);
            }
            "randpay_tariff" => {
                let t = Tariff::parse_line(v).map_err(|e: TariffError| SettingError::Inconsistent(e.to_string()))?;
                if self.tariffs.iter().any(|x| x.prefix == t.prefix) {
                    return Err(SettingError::Inconsistent(format!("randpay_tariff: prefix {} is set twice", t.prefix)));
                }
                self.tariffs.push(t);
            }
            "randpay_max_price" => {
                self.policy.max_price_per_minute = Amount::parse(v).ok_or_else(|| invalid(key, value, "an amount of EMC"))?
            }
            "randpay_max_ticket" => self.policy.max_ticket = Amount::parse(v).ok_or_else(|| invalid(key, value, "an amount of EMC"))?,
            "randpay_max_risk" => {
                self.policy.max_risk = v.parse().ok().filter(|&r| r >= 1).ok_or_else(|| invalid(key, value, "a number from 1"))?
            }
            "randpay_payee_url" => {
                if !v.is_empty() && !v.starts_with("http://") {
                    return Err(invalid(key, value, "an http:// URL (the payee's side channel)"));
                }
                self.payee_url = Some(v.trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
            }
            "randpay_side_timeout_ms" => {
                let ms: u64 = v.parse().ok().filter(|ms| (100..=60_000).contains(ms)).ok_or_else(|| invalid(key, value, "milliseconds, 100 to 60000"))?;
                self.side_timeout = Duration::from_millis(ms);
            }
            other => return Err(SettingError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// Checks that the role has what it needs.
    pub fn check(&self) -> Result<(), SettingError> {
        if self.role == RandpayRole::Payee && self.tariffs.is_empty() {
            return Err(SettingError::Inconsistent("randpay_role is payee but no randpay_tariff is set".into()));
        }
        Ok(())
    }

    pub fn tariff_table(&self) -> TariffTable {
        TariffTable::new(self.tariffs.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let mut s = RandpaySettings::default();
        s.set("randpay_role", "payee").unwrap();
        assert!(s.check().is_err(), "a payee needs tariffs");
        s.set("randpay_tariff", "+49 0.01 risk=10").unwrap();
        s.set("randpay_tariff", "+ 0.05").unwrap();
        assert!(s.set("randpay_tariff", "+49 0.02").is_err(), "twice");
        s.check().unwrap();
        assert_eq!(s.tariff_table().for_number("+4930").unwrap().risk, 10);
        s.set("randpay_max_price", "0.02").unwrap();
        assert_eq!(s.policy.max_price_per_minute, Amount(20_000));
        assert!(s.set("randpay_max_risk", "0").is_err());
        assert!(s.set("randpay_role", "both").is_err());
        assert!(matches!(s.set("randpay_x", "1"), Err(SettingError::Unknown(_))));
        s.set("randpay_payee_url", "http://10.0.0.2:8481/").unwrap();
        assert_eq!(s.payee_url.as_deref(), Some("http://10.0.0.2:8481"));
        assert!(s.set("randpay_payee_url", "10.0.0.2:8481").is_err(), "not a URL");
        s.set("randpay_side_timeout_ms", "500").unwrap();
        assert_eq!(s.side_timeout, Duration::from_millis(500));
        assert!(s.set("randpay_side_timeout_ms", "5").is_err());
        for k in KEYS {
            assert!(!matches!(s.clone().set(k, "x"), Err(SettingError::Unknown(_))), "{k}");
        }
    }
}
