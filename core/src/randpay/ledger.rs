//! The ledger: every call, challenge and ticket, in SQLite, committed before the
//! PBX acts on it, so a restart of the PBX loses no row. WAL with
//! synchronous=NORMAL: a commit is in the operating system's hands when the call
//! returns (a crash of Kamailio or Asterisk loses nothing); only a power cut can
//! lose the last commits before a checkpoint — and winning tickets are on the
//! chain in any case. An fsync per commit (FULL) would cap a payee at about a
//! hundred calls per second on an ordinary disk. The payee
//! checks that a ticket answers a challenge it issued for that call and interval;
//! the payer hands out the same ticket again when an interval is asked twice.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::chap::{Chap, Ticket};
use super::node::Accepted;
use super::tariff::{Amount, Tariff};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger: no call {0:?}")]
    NoCall(String),
}

/// Which side of the payment this PBX is on for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Payee,
    Payer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Payee => "payee",
            Role::Payer => "payer",
        }
    }
}

/// One call's totals.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallSummary {
    pub call_id: String,
    pub role: String,
    pub number: String,
    pub tariff_prefix: String,
    pub started_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
    /// Intervals whose ticket paid (payee) or tickets minted (payer).
    pub tickets: u32,
    pub won: u32,
    /// Sum of amount/risk over the tickets counted: what the call cost in expectation.
    pub expected_value: Amount,
    /// What winning tickets moved.
    pub won_amount: Amount,
}

pub struct Ledger {
    db: Connection,
}

/// Milliseconds since the epoch, the ledger's clock.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Ledger {
    /// Run a statement, parsed once per connection (the statement cache).
    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, rusqlite::Error> {
        self.db.prepare_cached(sql)?.execute(p)
    }

    fn row<T>(&self, sql: &str, p: impl rusqlite::Params, f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<T, rusqlite::Error> {
        self.db.prepare_cached(sql)?.query_row(p, f)
    }

    /// Open (or create, mode 0600) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let err = |source| LedgerError::Open { path: path.display().to_string(), source };
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let db = Connection::open(path).map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(2)).map_err(err)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS calls (
               call_id TEXT PRIMARY KEY, role TEXT NOT NULL, number TEXT NOT NULL,
               tariff TEXT NOT NULL, price INTEGER NOT NULL, risk INTEGER NOT NULL,
               interval INTEGER NOT NULL, grace INTEGER NOT NULL,
               started INTEGER NOT NULL, answered INTEGER, ended INTEGER, end_reason TEXT);
             CREATE TABLE IF NOT EXISTS tickets (
               call_id TEXT NOT NULL, seq INTEGER NOT NULL, chap TEXT NOT NULL,
               issued INTEGER NOT NULL, ticket TEXT, received INTEGER,
               won INTEGER, amount INTEGER, expected INTEGER, risk INTEGER, outcome TEXT,
               PRIMARY KEY (call_id, seq));
             CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started);",
        )
        .map_err(err)?;
        Ok(Ledger { db })
    }

    pub fn begin_call(&self, call_id: &str, role: Role, number: &str, tariff: &Tariff) -> Result<(), LedgerError> {
        self.exec(
            "INSERT OR IGNORE INTO calls (call_id, role, number, tariff, price, risk, interval, grace, started)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                call_id,
                role.as_str(),
                number,
                tariff.prefix,
                tariff.price_per_minute.0,
                tariff.risk,
                tariff.interval_secs,
                tariff.grace_secs,
                now_ms()
            ],
        )?;
        Ok(())
    }

    pub fn answered(&self, call_id: &str) -> Result<(), LedgerError> {
        self.exec("UPDATE calls SET answered = ?2 WHERE call_id = ?1 AND answered IS NULL", params![call_id, now_ms()])?;
        Ok(())
    }

    /// End a call (first reason wins).
    pub fn end_call(&self, call_id: &str, reason: &str) -> Result<(), LedgerError> {
        self.exec(
            "UPDATE calls SET ended = ?2, end_reason = ?3 WHERE call_id = ?1 AND ended IS NULL",
            params![call_id, now_ms(), reason],
        )?;
        Ok(())
    }

    /// Has this Call-ID been used by a call that ended? (It must not be reused.)
    pub fn ended(&self, call_id: &str) -> Result<bool, LedgerError> {
        Ok(self.row("SELECT ended IS NOT NULL FROM calls WHERE call_id = ?1", params![call_id], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// At startup: calls that were in progress when the PBX stopped end as `restart`.
    pub fn close_interrupted(&self) -> Result<usize, LedgerError> {
        Ok(self.exec("UPDATE calls SET ended = ?1, end_reason = 'restart' WHERE ended IS NULL", params![now_ms()])?)
    }

    /// The payee issued (or, after a node restart, re-issued) the challenge for `seq`.
    pub fn challenge(&self, call_id: &str, seq: u32, chap: &Chap) -> Result<(), LedgerError> {
        self.exec(
            "INSERT INTO tickets (call_id, seq, chap, issued) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (call_id, seq) DO UPDATE SET chap = excluded.chap, issued = excluded.issued,
               ticket = NULL, received = NULL, won = NULL, amount = NULL, expected = NULL, risk = NULL, outcome = NULL
             WHERE tickets.outcome IS NULL OR tickets.outcome != 'paid'",
            params![call_id, seq, chap.as_str(), now_ms()],
        )?;
        Ok(())
    }

    /// The challenge issued for this call and interval, if any.
    pub fn challenge_for(&self, call_id: &str, seq: u32) -> Result<Option<Chap>, LedgerError> {
        let text: Option<String> = self.row("SELECT chap FROM tickets WHERE call_id = ?1 AND seq = ?2", params![call_id, seq], |r| r.get(0))
            .optional()?;
        Ok(text.and_then(|t| Chap::parse(&t).ok()))
    }

    /// A ticket for `seq`: minted (payer) or received (payee).
    pub fn ticket(&self, call_id: &str, seq: u32, chap: &Chap, ticket: &Ticket) -> Result<(), LedgerError> {
        self.exec(
            "INSERT INTO tickets (call_id, seq, chap, issued, ticket, received) VALUES (?1, ?2, ?3, ?4, ?5, ?4)
             ON CONFLICT (call_id, seq) DO UPDATE SET ticket = excluded.ticket, received = excluded.received",
            params![call_id, seq, chap.as_str(), now_ms(), ticket.as_str()],
        )?;
        Ok(())
    }

    /// The ticket already minted for this call and interval (a repeated challenge
    /// gets the same one, never a second).
    pub fn ticket_for(&self, call_id: &str, seq: u32, chap: &Chap) -> Result<Option<Ticket>, LedgerError> {
        let text: Option<Option<String>> = self.row(
                "SELECT ticket FROM tickets WHERE call_id = ?1 AND seq = ?2 AND chap = ?3",
                params![call_id, seq, chap.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.flatten().and_then(|t| Ticket::parse(&t).ok()))
    }

    /// What the payee's node said about the ticket for `seq`.
    pub fn outcome(&self, call_id: &str, seq: u32, accepted: &Accepted) -> Result<(), LedgerError> {
        let outcome = if accepted.pays() { "paid" } else { "short" };
        self.exec(
            "UPDATE tickets SET won = ?3, amount = ?4, expected = ?5, risk = ?6, outcome = ?7 WHERE call_id = ?1 AND seq = ?2",
            params![call_id, seq, accepted.won, accepted.amount.0, accepted.expected.0, accepted.risk, outcome],
        )?;
        Ok(())
    }

    /// A ticket refused (replay, unknown challenge, bad transaction).
    pub fn refused(&self, call_id: &str, seq: u32, why: &str) -> Result<(), LedgerError> {
        self.exec(
            "UPDATE tickets SET outcome = ?3 WHERE call_id = ?1 AND seq = ?2 AND (outcome IS NULL OR outcome != 'paid')",
            params![call_id, seq, format!("refused: {why}")],
        )?;
        Ok(())
    }

    /// Intervals paid so far (payee).
    pub fn paid_intervals(&self, call_id: &str) -> Result<u32, LedgerError> {
        Ok(self.row(
            "SELECT COUNT(*) FROM tickets WHERE call_id = ?1 AND outcome = 'paid'",
            params![call_id],
            |r| r.get(0),
        )?)
    }

    pub fn call(&self, call_id: &str) -> Result<CallSummary, LedgerError> {
        self.calls_where("c.call_id = ?1", params![call_id])?.pop().ok_or_else(|| LedgerError::NoCall(call_id.to_owned()))
    }

    /// The most recent calls, newest first.
    pub fn recent_calls(&self, limit: u32) -> Result<Vec<CallSummary>, LedgerError> {
        self.calls_where("1 = 1 ORDER BY c.started DESC LIMIT ?1", params![limit])
    }

    fn calls_where(&self, cond: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<CallSummary>, LedgerError> {
        // Payee rows count paid tickets; payer rows count every ticket minted.
        let sql = format!(
            "SELECT c.call_id, c.role, c.number, c.tariff, c.started, c.answered, c.ended, c.end_reason, c.price, c.interval,
               (SELECT COUNT(*) FROM tickets t WHERE t.call_id = c.call_id
                  AND ((c.role = 'payee' AND t.outcome = 'paid') OR (c.role = 'payer' AND t.ticket IS NOT NULL))),
               (SELECT COUNT(*) FROM tickets t WHERE t.call_id = c.call_id AND t.won = 1 AND t.outcome = 'paid'),
               (SELECT COALESCE(SUM(t.amount), 0) FROM tickets t WHERE t.call_id = c.call_id AND t.won = 1 AND t.outcome = 'paid')
             FROM calls c WHERE {cond}"
        );
        let mut st = self.db.prepare_cached(&sql)?;
        let rows = st.query_map(args, |r| {
            let price: i64 = r.get(8)?;
            let interval: i64 = r.get(9)?;
            let tickets: u32 = r.get(10)?;
            Ok(CallSummary {
                call_id: r.get(0)?,
                role: r.get(1)?,
                number: r.get(2)?,
                tariff_prefix: r.get(3)?,
                started_ms: r.get(4)?,
                answered_ms: r.get(5)?,
                ended_ms: r.get(6)?,
                end_reason: r.get(7)?,
                tickets,
                won: r.get(11)?,
                // Each counted ticket is worth price × interval / 60 in expectation.
                expected_value: Amount((i128::from(price) * i128::from(interval) * i128::from(tickets) / 60) as i64),
                won_amount: Amount(r.get(12)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paid_interval_is_never_reissued_and_ended_calls_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).unwrap();
        let t = Tariff::new("+49", "0.01", 100, 60, 10).unwrap();
        let chap = Chap::parse("1.00:100:000003cf782b532f5a7e4d75848284bb66559803").unwrap();
        let other = Chap::parse("1.00:100:000003cf782b532f5a7e4d75848284bb66559804").unwrap();
        l.begin_call("c", Role::Payee, "+4930", &t).unwrap();
        assert!(!l.ended("c").unwrap());
        l.challenge("c", 0, &chap).unwrap();
        l.ticket("c", 0, &chap, &Ticket::parse("ecec000102030405060708090a").unwrap()).unwrap();
        let acc = Accepted { txid: "t".into(), amount: Amount(1_000_000), expected: Amount(10_000), risk: 100, won: false, sent: false };
        l.outcome("c", 0, &acc).unwrap();
        // A new challenge for a paid seq (a bug or a replayed INVITE) changes nothing.
        l.challenge("c", 0, &other).unwrap();
        assert_eq!(l.challenge_for("c", 0).unwrap(), Some(chap));
        assert_eq!(l.paid_intervals("c").unwrap(), 1);
        l.end_call("c", "bye").unwrap();
        assert!(l.ended("c").unwrap());
        assert!(!l.ended("never-seen").unwrap());
    }

    #[test]
    fn a_call_survives_reopening_and_tickets_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let t = Tariff::new("+49", "0.01", 100, 60, 10).unwrap();
        let chap = Chap::parse("1.00:100:000003cf782b532f5a7e4d75848284bb66559803").unwrap();
        let ticket = Ticket::parse("ecec000102030405060708090a").unwrap();
        {
            let l = Ledger::open(&path).unwrap();
            l.begin_call("call-1", Role::Payee, "+4930123456", &t).unwrap();
            l.challenge("call-1", 0, &chap).unwrap();
            assert_eq!(l.challenge_for("call-1", 0).unwrap(), Some(chap.clone()));
            assert_eq!(l.challenge_for("call-1", 1).unwrap(), None);
            l.ticket("call-1", 0, &chap, &ticket).unwrap();
            let acc = Accepted { txid: "t".into(), amount: Amount(1_000_000), expected: Amount(1_000_000), risk: 100, won: true, sent: true };
            l.outcome("call-1", 0, &acc).unwrap();
            l.answered("call-1").unwrap();
            // A replay of the same ticket does not undo the payment.
            l.refused("call-1", 0, "replay").unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.paid_intervals("call-1").unwrap(), 1);
        assert_eq!(l.ticket_for("call-1", 0, &chap).unwrap(), Some(ticket));
        assert_eq!(l.close_interrupted().unwrap(), 1);
        let s = l.call("call-1").unwrap();
        assert_eq!((s.tickets, s.won, s.won_amount, s.expected_value), (1, 1, Amount(1_000_000), Amount(10_000)));
        assert_eq!(s.end_reason.as_deref(), Some("restart"));
        assert!(matches!(l.call("nope"), Err(LedgerError::NoCall(_))));
        assert_eq!(l.recent_calls(10).unwrap().len(), 1);
    }
}
