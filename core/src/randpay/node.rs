//! The three RANDPAY node calls with typed outcomes (shared/docs/emercoin.md §4).
//! Each is bounded by the client's per-call timeout. Tickets are always minted
//! with flags 2 (P2PKH: v0.8.6 nodes cannot broadcast the default P2WPKH winner,
//! and flag 1 "naive" tickets are real payments even when they lose); tickets are
//! accepted with flags 1 (a win counts only if it pays at least the challenge).

use std::time::Duration;

use serde_json::{Value, json};

use super::chap::{Chap, Ticket};
use super::tariff::Amount;
use crate::nvs::{NvsClient, NvsError};

/// `randpay_mktx` flags: pay to P2PKH.
pub const MKTX_FLAGS: i64 = 2;
/// `randpay_accept` flags: broadcast a win only if its amount ≥ the challenge's.
pub const ACCEPT_FLAGS: i64 = 1;

/// What `randpay_accept` said about a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub txid: String,
    /// What the ticket pays if it wins.
    pub amount: Amount,
    /// What the challenge asked for.
    pub expected: Amount,
    pub risk: u32,
    pub won: bool,
    /// Broadcast (a win paying at least `expected`).
    pub sent: bool,
}

impl Accepted {
    /// Whether the ticket pays for its interval: it was for the challenge's full
    /// amount (won or lost — a loss is still a fair draw).
    pub fn pays(&self) -> bool {
        self.amount >= self.expected && (!self.won || self.sent)
    }
}

/// Why a ticket was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the ticket matches no challenge of this node: a replay, a forgery, or the node restarted and forgot it")]
    UnknownChallenge,
    #[error("the ticket was already accepted (replay)")]
    Replay,
    #[error("the ticket is not a valid transaction: {0}")]
    Invalid(String),
    #[error(transparent)]
    Node(NvsError),
}

/// Why the payer's node made no ticket.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("the payer's wallet has not enough coins for a ticket of {0} EMC")]
    InsufficientFunds(Amount),
    #[error("the payer's coins are locked by tickets still in flight (a ticket needs {0} EMC unlocked)")]
    FundsLocked(Amount),
    #[error("the node refused the challenge: {0}")]
    Refused(String),
    #[error(transparent)]
    Node(NvsError),
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Payee: a challenge for a ticket of `amount` at `risk`.
pub async fn mkchap(node: &NvsClient, amount: Amount, risk: u32, timeout: Duration) -> Result<Chap, NvsError> {
    let v = node.call("randpay_mkchap", vec![json!(amount.as_f64()), json!(risk), json!(secs(timeout))]).await?;
    let text = v.as_str().ok_or_else(|| NvsError::Config(format!("randpay_mkchap answered {v}, not a challenge string")))?;
    Chap::parse(text).map_err(|e| NvsError::Config(format!("randpay_mkchap: {e}")))
}

/// Payer: a ticket for `chap`, locking the coins for `timeout`.
pub async fn mktx(node: &NvsClient, chap: &Chap, timeout: Duration) -> Result<Ticket, MintError> {
    match node.call("randpay_mktx", vec![json!(chap.as_str()), json!(secs(timeout)), json!(MKTX_FLAGS)]).await {
        Ok(v) => {
            let text = v.as_str().unwrap_or_default();
            Ticket::parse(text).map_err(|e| MintError::Refused(format!("randpay_mktx answered something else: {e}")))
        }
        Err(e) => Err(match e.rpc_code() {
            Some(-6) => MintError::InsufficientFunds(chap.amount),
            Some(-4) => MintError::FundsLocked(chap.amount),
            Some(-3) => MintError::Refused(e.rpc_message().unwrap_or_default().to_owned()),
            _ => MintError::Node(e),
        }),
    }
}

fn amount_of(v: &Value, key: &str) -> Option<Amount> {
    // The node prints amounts as JSON numbers with six decimals.
    let f = v.get(key)?.as_f64()?;
    (0.0..1e9).contains(&f).then(|| Amount((f * Amount::COIN as f64).round() as i64))
}

/// Payee: judge (and, on a win, redeem) a ticket.
pub async fn accept(node: &NvsClient, ticket: &Ticket) -> Result<Accepted, AcceptError> {
    let v = match node.call("randpay_accept", vec![json!(ticket.as_str()), json!(ACCEPT_FLAGS)]).await {
        Ok(v) => v,
        Err(e) => {
            return Err(match (e.rpc_code(), e.rpc_message().unwrap_or_default()) {
                (Some(-5), _) => AcceptError::UnknownChallenge,
                (Some(-26), m) if m.contains("mempool-conflict") || m.contains("already") => AcceptError::Replay,
                (Some(-22 | -25 | -26), m) => AcceptError::Invalid(m.to_owned()),
                _ => AcceptError::Node(e),
            });
        }
    };
    let bad = || AcceptError::Invalid(format!("randpay_accept answered {v}"));
    Ok(Accepted {
        txid: v.get("txid").and_then(Value::as_str).ok_or_else(bad)?.to_owned(),
        amount: amount_of(&v, "amount").ok_or_else(bad)?,
        expected: amount_of(&v, "expected").ok_or_else(bad)?,
        risk: v.get("risk").and_then(Value::as_u64).and_then(|r| u32::try_from(r).ok()).ok_or_else(bad)?,
        won: v.get("won").and_then(Value::as_bool).ok_or_else(bad)?,
        sent: v.get("sent").and_then(Value::as_bool).ok_or_else(bad)?,
    })
}
