//! The devnet's chain: block height, names with their full operation history, the
//! mempool of pending name operations, and the rules emercoind applies to them
//! (docs/emercoin.md §2): expiry by blocks (175 per day), one pending operation per
//! name, the name index order (length, then bytes).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Blocks per rental day.
pub const BLOCKS_PER_DAY: u64 = 175;
pub const MAX_NAME_LENGTH: usize = 512;
pub const MAX_VALUE_LENGTH: usize = 20 * 1024;
pub const MAX_RENTAL_DAYS: i64 = 366_000_000;

/// A name as the node indexes it: compared by length first, then bytes, the order
/// of emercoind's LevelDB name index (and so of `name_scan` and `name_filter`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameKey(pub Vec<u8>);

impl Ord for NameKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for NameKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for NameKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map(NameKey).map_err(serde::de::Error::custom)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    New,
    Update,
    Delete,
}

impl OpKind {
    pub fn rpc_name(self) -> &'static str {
        match self {
            OpKind::New => "name_new",
            OpKind::Update => "name_update",
            OpKind::Delete => "name_delete",
        }
    }
}

/// One name operation (a transaction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameOp {
    pub kind: OpKind,
    pub txid: String,
    /// Block height; 0 while in the mempool.
    pub height: u64,
    pub time: i64,
    /// Owner after this operation.
    pub address: String,
    pub vout: u32,
    pub days: i64,
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

/// A name's confirmed history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    pub ops: Vec<NameOp>,
}

impl NameRecord {
    pub fn last(&self) -> &NameOp {
        self.ops.last().expect("a record has at least one operation")
    }

    /// Index of the `name_new` that started the current chain of operations.
    pub fn chain_start(&self) -> usize {
        self.ops.iter().rposition(|o| o.kind == OpKind::New).unwrap_or(0)
    }

    pub fn is_deleted(&self) -> bool {
        self.last().kind == OpKind::Delete
    }

    /// Height of expiry: start height + 175 × the days of every operation since.
    pub fn expires_at(&self) -> u64 {
        if self.is_deleted() {
            return 0;
        }
        let start = self.chain_start();
        let days: i64 = self.ops[start..].iter().map(|o| o.days.max(0)).sum();
        self.ops[start].height + BLOCKS_PER_DAY * days as u64
    }

    pub fn expires_in(&self, height: u64) -> i64 {
        self.expires_at() as i64 - height as i64
    }

    /// Active for the node's rules (name_new refused, history shown, emcdns answers):
    /// not deleted and height ≤ expires_at.
    pub fn is_active(&self, height: u64) -> bool {
        !self.is_deleted() && height <= self.expires_at()
    }

    /// The `expired` flag of name_show & co. (already at expires_in == 0).
    pub fn flagged_expired(&self, height: u64) -> bool {
        !self.is_deleted() && self.expires_in(height) <= 0
    }

    pub fn registered_at(&self) -> u64 {
        self.ops[self.chain_start()].height
    }

    /// The value a reader sees: the last operation's (empty once deleted).
    pub fn value(&self) -> &[u8] {
        &self.last().value
    }
}

/// A name operation waiting for a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOp {
    #[serde(with = "hex_bytes")]
    pub name: Vec<u8>,
    pub op: NameOp,
}

/// Everything about the chain that survives a restart.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Chain {
    pub height: u64,
    pub tip: String,
    pub names: BTreeMap<NameKey, NameRecord>,
    pub mempool: Vec<PendingOp>,
}

impl Chain {
    pub fn record(&self, name: &[u8]) -> Option<&NameRecord> {
        self.names.get(&NameKey(name.to_vec()))
    }

    pub fn pending_for(&self, name: &[u8]) -> Vec<&PendingOp> {
        self.mempool.iter().filter(|p| p.name == name).collect()
    }

    /// Mine one block: confirm every pending operation at the new height.
    pub fn mine_block(&mut self, hash: String) {
        self.height += 1;
        self.tip = hash;
        let height = self.height;
        for mut p in std::mem::take(&mut self.mempool) {
            p.op.height = height;
            self.names.entry(NameKey(p.name)).or_insert_with(|| NameRecord { ops: Vec::new() }).ops.push(p.op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, height: u64, days: i64) -> NameOp {
        NameOp { kind, txid: String::new(), height, time: 0, address: String::new(), vout: 0, days, value: b"v".to_vec() }
    }

    #[test]
    fn expiry_rules_match_the_node() {
        // name_new at 55 with 1 day: expires_at 230 (fixtures name_show.expires_at_boundary).
        let r = NameRecord { ops: vec![op(OpKind::New, 55, 1)] };
        assert_eq!(r.expires_at(), 230);
        assert!(r.is_active(230) && r.flagged_expired(230));
        assert!(!r.is_active(231));
        // Updates add days to the same chain; a new name_new restarts it.
        let r = NameRecord { ops: vec![op(OpKind::New, 55, 30), op(OpKind::Update, 56, 0), op(OpKind::Update, 57, 1)] };
        assert_eq!(r.expires_at(), 55 + 31 * 175);
        let r = NameRecord { ops: vec![op(OpKind::New, 55, 1), op(OpKind::New, 232, 1)] };
        assert_eq!((r.expires_at(), r.registered_at()), (407, 232));
        let r = NameRecord { ops: vec![op(OpKind::New, 55, 30), op(OpKind::Delete, 56, 0)] };
        assert_eq!((r.expires_at(), r.expires_in(56), r.is_active(56)), (0, -56, false));
    }

    #[test]
    fn index_order_is_length_then_bytes() {
        let mut keys = [NameKey(b"test:hist".to_vec()), NameKey(b"ver:enum".to_vec()), NameKey(b"test:a".to_vec())];
        keys.sort();
        assert_eq!(keys[0].0, b"test:a");
        assert_eq!(keys[1].0, b"ver:enum");
    }
}
