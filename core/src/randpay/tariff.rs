//! Tariffs: price per minute by destination prefix, with the risk, interval and
//! grace of the tickets that pay for it, and the ticket amount that makes the
//! expected payment equal the price (docs/randpay.md §1).

use std::fmt;

/// An amount of EMC in micro-EMC (Emercoin has six decimals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Amount(pub i64);

impl Amount {
    pub const COIN: i64 = 1_000_000;

    /// Parse `0.5`, `12`, `0.000083` (at most six decimals, no sign, no exponent).
    pub fn parse(text: &str) -> Option<Amount> {
        let t = text.trim();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if (int.is_empty() && frac.is_empty()) || frac.len() > 6 {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let f: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
        i.checked_mul(Self::COIN)?.checked_add(f).map(Amount)
    }

    /// As an operator writes it: `0.01`, `12` (no trailing zeros).
    pub fn plain(self) -> String {
        let s = self.to_string();
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }

    /// As a JSON number for the node (exact: six decimals at most).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::COIN as f64
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let v = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", v / Self::COIN as u64, v % Self::COIN as u64)
    }
}

/// Why a tariff was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TariffError {
    #[error("tariff {0:?}: the prefix must be + and digits, e.g. +49 (or + for every number)")]
    Prefix(String),
    #[error("tariff {prefix}: price {price:?} is not an amount of EMC (e.g. 0.01)")]
    Price { prefix: String, price: String },
    #[error("tariff {0}: risk must be 1 to 4294967295")]
    Risk(String),
    #[error("tariff {0}: interval must be 10 to 3600 seconds and grace 0 to the interval")]
    Timing(String),
    #[error("tariff {0}: the ticket amount (price x interval x risk) is below 0.000001 EMC or above 21000000 EMC")]
    TicketAmount(String),
}

/// What calls to one destination prefix cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tariff {
    /// `+49`, `+1555`, or `+` for everything.
    pub prefix: String,
    pub price_per_minute: Amount,
    /// A ticket wins with probability 1/risk.
    pub risk: u32,
    /// Seconds one ticket pays for.
    pub interval_secs: u32,
    /// Seconds a ticket may be late before the call is cut.
    pub grace_secs: u32,
}

impl Tariff {
    pub fn new(prefix: &str, price_per_minute: &str, risk: u32, interval_secs: u32, grace_secs: u32) -> Result<Tariff, TariffError> {
        let p = prefix.trim();
        if !p.starts_with('+') || !p[1..].bytes().all(|b| b.is_ascii_digit()) || p.len() > 16 {
            return Err(TariffError::Prefix(prefix.to_owned()));
        }
        let price = Amount::parse(price_per_minute)
            .ok_or_else(|| TariffError::Price { prefix: p.to_owned(), price: price_per_minute.to_owned() })?;
        if risk == 0 {
            return Err(TariffError::Risk(p.to_owned()));
        }
        if !(10..=3600).contains(&interval_secs) || grace_secs > interval_secs {
            return Err(TariffError::Timing(p.to_owned()));
        }
        let t = Tariff { prefix: p.to_owned(), price_per_minute: price, risk, interval_secs, grace_secs };
        let amount = t.ticket_amount().0;
        if !(1..=21_000_000 * Amount::COIN).contains(&amount) {
            return Err(TariffError::TicketAmount(p.to_owned()));
        }
        Ok(t)
    }

    /// What one interval costs in expectation: price × interval / 60, to the micro-EMC.
    pub fn interval_price(&self) -> Amount {
        Amount(div_round(i128::from(self.price_per_minute.0) * i128::from(self.interval_secs), 60))
    }

    /// Seconds a host's own timer (Kamailio's dialog timeout) lets a call run past
    /// its last paid ticket, should the metering itself stop: one interval, the
    /// grace and 30 s of slack, so it never cuts a call the metering would keep.
    pub fn backstop_secs(&self) -> u32 {
        self.interval_secs + self.grace_secs + 30
    }

    /// The ticket amount A = price × interval/60 × risk: what a winning ticket pays,
    /// so that A / risk is the interval's price.
    pub fn ticket_amount(&self) -> Amount {
        Amount(div_round(
            i128::from(self.price_per_minute.0) * i128::from(self.interval_secs) * i128::from(self.risk),
            60,
        ))
    }

    /// The price per minute a challenge implies: amount / risk × 60 / interval.
    pub fn implied_price(amount: Amount, risk: u32, interval_secs: u32) -> Amount {
        if risk == 0 || interval_secs == 0 {
            return Amount(i64::MAX);
        }
        Amount(div_round(i128::from(amount.0) * 60, i128::from(risk) * i128::from(interval_secs)))
    }
}

fn div_round(n: i128, d: i128) -> i64 {
    ((n + d / 2) / d).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Tariffs by prefix; the longest matching prefix wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TariffTable {
    tariffs: Vec<Tariff>,
}

impl TariffTable {
    pub fn new(mut tariffs: Vec<Tariff>) -> TariffTable {
        tariffs.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(a.prefix.cmp(&b.prefix)));
        TariffTable { tariffs }
    }

    /// The tariff for an E.164 number (`+4930…` or digits).
    pub fn for_number(&self, number: &str) -> Option<&Tariff> {
        let digits = number.trim().trim_start_matches('+');
        self.tariffs.iter().find(|t| digits.starts_with(&t.prefix[1..]))
    }

    pub fn tariffs(&self) -> &[Tariff] {
        &self.tariffs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(Amount::parse("0.5"), Some(Amount(500_000)));
        assert_eq!(Amount::parse("12"), Some(Amount(12_000_000)));
        assert_eq!(Amount::parse(".000083"), Some(Amount(83)));
        for bad in ["", ".", "-1", "1e3", "0.0000001", "1.2.3", "x"] {
            assert_eq!(Amount::parse(bad), None, "{bad}");
        }
        assert_eq!(Amount(500_000).to_string(), "0.500000");
        assert_eq!(Amount(83).as_f64(), 0.000083);
    }

    #[test]
    fn the_expected_payment_is_the_price_whatever_the_risk() {
        // 0.01 EMC/min, one ticket per minute at risk 100: a winner pays 1 EMC.
        let t = Tariff::new("+49", "0.01", 100, 60, 10).unwrap();
        assert_eq!(t.ticket_amount(), Amount(1_000_000));
        assert_eq!(t.interval_price(), Amount(10_000));
        assert_eq!(Tariff::implied_price(t.ticket_amount(), t.risk, t.interval_secs), t.price_per_minute);
        // 30 s intervals: half the amount.
        let half = Tariff::new("+49", "0.01", 100, 30, 5).unwrap();
        assert_eq!(half.ticket_amount(), Amount(500_000));
        assert!(Tariff::new("+49", "0.000001", 1, 10, 0).is_err(), "a ticket below one micro-EMC");
        assert!(Tariff::new("49", "0.01", 1, 60, 0).is_err());
        assert!(Tariff::new("+49", "0.01", 0, 60, 0).is_err());
        assert!(Tariff::new("+49", "0.01", 1, 60, 61).is_err());
        assert!(Tariff::new("+49", "ten", 1, 60, 0).is_err());
    }

    #[test]
    fn longest_prefix_wins() {
        let table = TariffTable::new(vec![
            Tariff::new("+", "0.05", 10, 60, 10).unwrap(),
            Tariff::new("+49", "0.01", 10, 60, 10).unwrap(),
            Tariff::new("+4930", "0.005", 10, 60, 10).unwrap(),
        ]);
        assert_eq!(table.for_number("+4930123456").unwrap().prefix, "+4930");
        assert_eq!(table.for_number("4940123456").unwrap().prefix, "+49");
        assert_eq!(table.for_number("+15551234567").unwrap().prefix, "+");
        assert!(TariffTable::new(vec![Tariff::new("+49", "0.01", 10, 60, 10).unwrap()]).for_number("+1555").is_none());
    }
}

impl Tariff {
    /// A tariff line as operators write it in a module's settings:
    /// `+49 0.01 risk=100 interval=60 grace=10` (price per minute in EMC; risk,
    /// interval and grace optional: 100, 60 s and 10 s).
    pub fn parse_line(line: &str) -> Result<Tariff, TariffError> {
        let mut words = line.split_whitespace();
        let prefix = words.next().unwrap_or("");
        let price = words.next().unwrap_or("");
        let price = price.strip_suffix("/min").unwrap_or(price);
        let (mut risk, mut interval, mut grace) = (100u32, 60u32, 10u32);
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| TariffError::Prefix(line.to_owned()))?;
            let n: u32 = v.parse().map_err(|_| TariffError::Timing(format!("{prefix} ({k}={v:?} is not a number)")))?;
            match k {
                "risk" => risk = n,
                "interval" => interval = n,
                "grace" => grace = n,
                _ => return Err(TariffError::Timing(format!("{prefix} (unknown setting {k:?}: risk, interval or grace)"))),
            }
        }
        Tariff::new(prefix, price, risk, interval, grace)
    }

    /// The tariff line [`Tariff::parse_line`] reads back.
    pub fn line(&self) -> String {
        format!("{} {} risk={} interval={} grace={}", self.prefix, self.price_per_minute.plain(), self.risk, self.interval_secs, self.grace_secs)
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn tariff_lines() {
        let t = Tariff::parse_line("+49 0.01/min risk=10 interval=30 grace=5").unwrap();
        assert_eq!((t.prefix.as_str(), t.price_per_minute, t.risk, t.interval_secs, t.grace_secs), ("+49", Amount(10_000), 10, 30, 5));
        assert_eq!(Tariff::parse_line(&t.line()).unwrap(), t, "{}", t.line());
        assert_eq!(t.line(), "+49 0.01 risk=10 interval=30 grace=5");
        assert_eq!(Amount(12_000_000).plain(), "12");
        let d = Tariff::parse_line("+ 0.02").unwrap();
        assert_eq!((d.risk, d.interval_secs, d.grace_secs), (100, 60, 10));
        for bad in ["", "+49", "49 0.01", "+49 0.01 risk=0", "+49 0.01 risk", "+49 0.01 speed=3", "+49 0.01 grace=99"] {
            assert!(Tariff::parse_line(bad).is_err(), "{bad}");
        }
    }
}
