//! One call's schedule, as the payee keeps it (docs/randpay.md §3): which interval
//! is paid, when the next challenge is due, and when an unpaid call must be cut.
//! And the payer's policy: which challenges it pays. Pure logic: time is passed
//! in as the offset from the answer, so the rules are tested without waiting.

use std::time::Duration;

use super::chap::ChallengeHeader;
use super::node::Accepted;
use super::tariff::{Amount, Tariff};

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterState {
    /// Paid until this offset from the answer.
    Paid { until: Duration },
    /// Interval `seq` is unpaid; the call is cut at `deadline` (offset from the answer).
    Due { seq: u32, deadline: Duration },
    /// Past the deadline of `seq`: end the call.
    Late { seq: u32 },
}

/// What a ticket did for the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketVerdict {
    /// Interval `seq` is now paid.
    Paid,
    /// A second ticket for a paid interval: ignored.
    Duplicate,
    /// A ticket for an interval no challenge was issued for: ignored.
    Unexpected,
    /// Accepted by the node but it does not pay (amount lowered): ignored.
    Short,
}

/// The payee's view of one call.
#[derive(Clone, Debug)]
pub struct PayeeMeter {
    pub tariff: Tariff,
    /// Intervals paid: seq 0 .. paid-1.
    paid: u32,
    /// The challenge issued and not yet paid.
    outstanding: Option<u32>,
}

impl PayeeMeter {
    pub fn new(tariff: Tariff) -> PayeeMeter {
        PayeeMeter { tariff, paid: 0, outstanding: None }
    }

    /// Rebuild after a restart of the meter's host from what the ledger says.
    pub fn resume(tariff: Tariff, paid: u32) -> PayeeMeter {
        PayeeMeter { tariff, paid, outstanding: None }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.tariff.interval_secs))
    }

    pub fn paid_intervals(&self) -> u32 {
        self.paid
    }

    /// May the call be answered (or routed)? Interval 0 is paid before the answer.
    pub fn may_connect(&self) -> bool {
        self.paid > 0
    }

    /// When the challenge for `seq` is due: a quarter interval before the paid time
    /// runs out (seq 0: at once).
    pub fn challenge_time(&self, seq: u32) -> Duration {
        (self.interval() * seq).saturating_sub(self.interval() / 4)
    }

    /// When an unpaid `seq` ends the call.
    pub fn deadline(&self, seq: u32) -> Duration {
        self.interval() * seq + Duration::from_secs(u64::from(self.tariff.grace_secs))
    }

    /// The seq to challenge now, if one is due and not yet issued.
    pub fn challenge_due(&self, since_answer: Duration) -> Option<u32> {
        let seq = self.paid;
        (self.outstanding != Some(seq) && since_answer >= self.challenge_time(seq)).then_some(seq)
    }

    pub fn challenge_issued(&mut self, seq: u32) {
        self.outstanding = Some(seq);
    }

    /// The node forgot the challenge (restart): issue a fresh one for the same seq.
    pub fn challenge_lost(&mut self, seq: u32) {
        if self.outstanding == Some(seq) {
            self.outstanding = None;
        }
    }

    pub fn state(&self, since_answer: Duration) -> MeterState {
        let until = self.interval() * self.paid;
        if since_answer < until {
            MeterState::Paid { until }
        } else if since_answer < self.deadline(self.paid) {
            MeterState::Due { seq: self.paid, deadline: self.deadline(self.paid) }
        } else {
            MeterState::Late { seq: self.paid }
        }
    }

    /// Record the node's verdict on the ticket for `seq`.
    pub fn ticket(&mut self, seq: u32, accepted: &Accepted) -> TicketVerdict {
        if seq < self.paid {
            return TicketVerdict::Duplicate;
        }
        if self.outstanding != Some(seq) {
            return TicketVerdict::Unexpected;
        }
        if !accepted.pays() {
            return TicketVerdict::Short;
        }
        self.paid = seq + 1;
        self.outstanding = None;
        TicketVerdict::Paid
    }
}

/// Why the payer refused a challenge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the challenge implies {implied} EMC/min (announced {announced}), above the limit {limit}")]
    Price { implied: Amount, announced: Amount, limit: Amount },
    #[error("risk {risk} is above the limit {limit}")]
    Risk { risk: u32, limit: u32 },
    #[error("a ticket of {amount} EMC is above the limit {limit}")]
    Ticket { amount: Amount, limit: Amount },
    #[error("interval {0} s is outside 10 to 3600 s")]
    Interval(u32),
}

/// What the payer is willing to pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayerPolicy {
    pub max_price_per_minute: Amount,
    pub max_risk: u32,
    /// The most coins one ticket may lock.
    pub max_ticket: Amount,
}

impl PayerPolicy {
    /// Pay this challenge? The price is computed from the chap itself, not taken
    /// from the announcement.
    pub fn check(&self, h: &ChallengeHeader) -> Result<(), PolicyError> {
        if !(10..=3600).contains(&h.interval_secs) {
            return Err(PolicyError::Interval(h.interval_secs));
        }
        if h.chap.risk > self.max_risk {
            return Err(PolicyError::Risk { risk: h.chap.risk, limit: self.max_risk });
        }
        if h.chap.amount > self.max_ticket {
            return Err(PolicyError::Ticket { amount: h.chap.amount, limit: self.max_ticket });
        }
        let implied = Tariff::implied_price(h.chap.amount, h.chap.risk, h.interval_secs);
        if implied > self.max_price_per_minute {
            return Err(PolicyError::Price { implied, announced: h.price_per_minute, limit: self.max_price_per_minute });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::randpay::chap::Chap;

    fn accepted(won: bool, sent: bool, amount: i64) -> Accepted {
        Accepted { txid: "00".into(), amount: Amount(amount), expected: Amount(1_000_000), risk: 100, won, sent }
    }

    #[test]
    fn a_call_is_paid_interval_by_interval_and_cut_when_late() {
        let t = Tariff::new("+49", "0.01", 100, 60, 10).unwrap();
        let mut m = PayeeMeter::new(t);
        let s = Duration::from_secs;
        assert!(!m.may_connect());
        assert_eq!(m.challenge_due(s(0)), Some(0));
        m.challenge_issued(0);
        assert_eq!(m.challenge_due(s(0)), None, "not twice");
        assert_eq!(m.ticket(0, &accepted(false, false, 1_000_000)), TicketVerdict::Paid, "a fair loss pays");
        assert!(m.may_connect());
        assert_eq!(m.state(s(30)), MeterState::Paid { until: s(60) });
        assert_eq!(m.challenge_due(s(44)), None);
        assert_eq!(m.challenge_due(s(45)), Some(1), "a quarter interval early");
        m.challenge_issued(1);
        assert_eq!(m.ticket(0, &accepted(false, false, 1_000_000)), TicketVerdict::Duplicate);
        assert_eq!(m.ticket(2, &accepted(false, false, 1_000_000)), TicketVerdict::Unexpected);
        assert_eq!(m.ticket(1, &accepted(true, false, 999_999)), TicketVerdict::Short, "a lowered amount");
        assert_eq!(m.state(s(65)), MeterState::Due { seq: 1, deadline: s(70) });
        assert_eq!(m.state(s(70)), MeterState::Late { seq: 1 });
        // The node restarted: the same seq is challenged again.
        m.challenge_lost(1);
        assert_eq!(m.challenge_due(s(66)), Some(1));
        m.challenge_issued(1);
        assert_eq!(m.ticket(1, &accepted(true, true, 1_000_000)), TicketVerdict::Paid);
        assert_eq!(m.state(s(70)), MeterState::Paid { until: s(120) });
        assert_eq!(PayeeMeter::resume(m.tariff.clone(), 2).state(s(100)), MeterState::Paid { until: s(120) });
    }

    #[test]
    fn the_payer_checks_the_price_the_chap_implies() {
        let policy = PayerPolicy { max_price_per_minute: Amount(10_000), max_risk: 1000, max_ticket: Amount(5_000_000) };
        let header = |chap: &str, interval| ChallengeHeader {
            seq: 0,
            chap: Chap::parse(chap).unwrap(),
            interval_secs: interval,
            grace_secs: 10,
            price_per_minute: Amount(10_000),
        };
        let c = "1.00:100:000003cf782b532f5a7e4d75848284bb66559803";
        assert_eq!(policy.check(&header(c, 60)), Ok(()));
        // The same chap for a 30 s interval is twice the price, whatever is announced.
        assert!(matches!(policy.check(&header(c, 30)), Err(PolicyError::Price { .. })));
        assert!(matches!(policy.check(&header("1.00:5000:000003cf782b532f5a7e4d75848284bb66559803", 60)), Err(PolicyError::Risk { .. })));
        assert!(matches!(policy.check(&header("9.00:900:000003cf782b532f5a7e4d75848284bb66559803", 60)), Err(PolicyError::Ticket { .. })));
    }
}
