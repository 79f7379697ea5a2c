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
//!
//! The node (URL, credentials) is the module's own `node_url`/`emercoin_conf`/….

use std::path::PathBuf;

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
        }
    }
}

/// The names `set` accepts.
pub const KEYS: &[&str] =
    &["randpay_role", "randpay_wallet", "randpay_ledger", "randpay_tariff", "randpay_max_price", "randpay_max_risk", "randpay_max_ticket"];

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
        for k in KEYS {
            assert!(!matches!(s.clone().set(k, "x"), Err(SettingError::Unknown(_))), "{k}");
        }
    }
}
