//! The devnet's JSON-RPC methods, with emercoind's parameter rules, error codes and
//! messages (docs/emercoin.md; fixtures/emercoind/).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ness_core::emercoin::{Address, AddressKind, MessageSignature, Network};
use serde::{Deserialize, Serialize};

use crate::chain::{Chain, MAX_NAME_LENGTH, MAX_RENTAL_DAYS, MAX_VALUE_LENGTH, NameKey, NameOp, NameRecord, OpKind, PendingOp};
use crate::help;
use crate::randpay::{Challenge, Ticket, parse_money};
use crate::univalue::Uv;
use crate::wallet::{COIN, Wallet};

/// Coins credited to the mining wallet per generated block.
pub const BLOCK_REWARD: i64 = 100 * COIN;
/// Fee taken for each name operation.
pub const NAME_FEE: i64 = COIN / 100;

/// A JSON-RPC error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }

    /// HTTP status the node uses for this error.
    pub fn http_status(&self) -> u16 {
        match self.code {
            -32600 => 400,
            -32601 => 404,
            _ => 500,
        }
    }
}

type RpcResult = Result<Uv, RpcError>;

fn misc(message: impl Into<String>) -> RpcError {
    RpcError::new(-1, message)
}

fn internal(message: impl Into<String>) -> RpcError {
    RpcError::new(-32603, message)
}

/// Everything that survives a devnet restart.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub chain: Chain,
    pub wallets: BTreeMap<String, Wallet>,
    /// Wallets loaded now (the default wallet is named "").
    pub loaded: Vec<String>,
    /// Ids of tickets that were broadcast (a replay conflicts with them).
    pub broadcast_tickets: BTreeSet<String>,
}

/// A failure mode the devnet can be told to show (method `devnet_fault`), so tests
/// can meet the ways a real node fails.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer every call with -28 and this startup stage.
    Warmup(String),
    /// HTTP 500 "Work queue depth exceeded" (plain text).
    Busy,
    /// Accept the request and never answer.
    Hang,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// Close the connection without any HTTP reply (what a crashing node does).
    Drop,
}

/// Which wallet URL a request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletPath {
    Root,
    Named(String),
}

struct Lock {
    wallet: String,
    amount: i64,
    until: Instant,
}

/// The devnet node.
pub struct Node {
    pub state: State,
    pub fault: Fault,
    pub wallet_disabled: bool,
    /// Mine a block after every transaction (handy for demos; off for fidelity).
    pub automine: bool,
    /// Fixed transaction time (like -mocktime), else the wall clock.
    pub mocktime: Option<i64>,
    challenges: Vec<Challenge>,
    locks: Vec<Lock>,
    /// Set when the state changed and should be saved.
    pub dirty: bool,
    /// Calls answered per method since start (`devnet_rpccount`), for benchmarks.
    calls: std::collections::BTreeMap<String, u64>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

impl Node {
    pub fn new(state: State) -> Self {
        Node {
            state,
            fault: Fault::None,
            wallet_disabled: false,
            automine: false,
            mocktime: None,
            challenges: Vec::new(),
            calls: std::collections::BTreeMap::new(),
            locks: Vec::new(),
            dirty: false,
        }
    }

    /// A fresh node: height 0 (in initial block download until the first block) and
    /// an empty default wallet.
    pub fn fresh() -> Self {
        let mut state = State::default();
        state.wallets.insert(String::new(), Wallet::default());
        state.loaded.push(String::new());
        Node::new(state)
    }

    fn now(&self) -> i64 {
        self.mocktime.unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
        })
    }

    fn height(&self) -> u64 {
        self.state.chain.height
    }

    fn in_ibd(&self) -> bool {
        self.state.chain.height == 0
    }

    fn ibd_check(&self) -> Result<(), RpcError> {
        if self.in_ibd() { Err(RpcError::new(-10, "Emercoin is downloading blocks...")) } else { Ok(()) }
    }

    /// Which wallet (by name) owns an address.
    fn wallet_of(&self, address: &str) -> Option<&str> {
        self.state.wallets.iter().find(|(_, w)| w.owns(address)).map(|(n, _)| n.as_str())
    }

    fn locked(&mut self, wallet: &str) -> i64 {
        let now = Instant::now();
        self.locks.retain(|l| l.until > now);
        self.locks.iter().filter(|l| l.wallet == wallet).map(|l| l.amount).sum()
    }

    fn wallet_mut(&mut self, name: &str) -> &mut Wallet {
        self.state.wallets.entry(name.to_owned()).or_default()
    }

    /// Route a wallet method to a wallet, as bitcoind's GetWalletForJSONRPCRequest does.
    fn resolve_wallet(&self, path: &WalletPath) -> Result<String, RpcError> {
        if self.wallet_disabled {
            return Err(RpcError::new(-32601, "Method not found"));
        }
        if self.state.loaded.is_empty() {
            return Err(RpcError::new(-32601, "Method not found (wallet method is disabled because no wallet is loaded)"));
        }
        match path {
            WalletPath::Named(name) => {
                if self.state.loaded.contains(name) {
                    Ok(name.clone())
                } else {
                    Err(RpcError::new(-18, "Requested wallet does not exist or is not loaded"))
                }
            }
            WalletPath::Root if self.state.loaded.len() == 1 => Ok(self.state.loaded[0].clone()),
            WalletPath::Root => Err(RpcError::new(
                -19,
                "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).",
            )),
        }
    }

    /// Execute one call. `Err(None)` means: the node crashes on this call (the HTTP
    /// layer drops the connection).
    pub fn call(&mut self, path: &WalletPath, method: &str, params: &[Uv]) -> Result<Uv, Option<RpcError>> {
        if let Fault::Warmup(stage) = &self.fault
            && method != "devnet_fault" {
                return Err(Some(RpcError::new(-28, stage.clone())));
            }
        let p = Params { method, p: params };
        if method != "devnet_rpccount" {
            *self.calls.entry(method.to_owned()).or_default() += 1;
        }
        let wallet_method = WALLET_METHODS.contains(&method);
        if method == "getinfo" && !self.wallet_disabled {
            // v0.8.6 segfaults unless the request selects exactly one wallet.
            let exactly_one = match path {
                WalletPath::Named(n) => self.state.loaded.contains(n),
                WalletPath::Root => self.state.loaded.len() == 1,
            };
            if !exactly_one {
                return Err(None);
            }
        } else if method == "getinfo" {
            return Err(None);
        }
        let wallet = if wallet_method { Some(self.resolve_wallet(path).map_err(Some)?) } else { None };
        let w = wallet.as_deref().unwrap_or("");
        let r = match method {
            "getblockcount" => self.getblockcount(&p),
            "getblockchaininfo" => self.getblockchaininfo(&p),
            "getnetworkinfo" => Ok(network_info()),
            "getinfo" => self.getinfo(w),
            "generate" => self.generate(&p, Some(w.to_owned())),
            "generatetoaddress" => self.generatetoaddress(&p),
            "getnewaddress" => self.getnewaddress(&p, w),
            "getbalance" => Ok(Uv::amount(self.state.wallets.get(w).map_or(0, |x| x.balance))),
            "validateaddress" => self.validateaddress(&p),
            "signmessage" => self.signmessage(&p, w),
            "verifymessage" => self.verifymessage(&p),
            "loadwallet" => self.loadwallet(&p),
            "createwallet" => self.createwallet(&p),
            "unloadwallet" => self.unloadwallet(&p, path),
            "listwallets" => Ok(Uv::Arr(self.state.loaded.iter().map(Uv::str).collect())),
            "name_show" => self.name_show(&p),
            "name_history" => self.name_history(&p, w),
            "name_filter" => self.name_filter(&p),
            "name_scan" => self.name_scan(&p),
            "name_list" => self.name_list(&p, w),
            "name_mempool" => self.name_mempool(&p, w),
            "name_indexinfo" => self.name_indexinfo(&p),
            "name_scan_address" => Err(RpcError::new(
                -20,
                "Name-address index is not available. Add nameaddress=1 to emercoin.conf to enable it.",
            )),
            "name_new" => self.name_write(&p, w, OpKind::New),
            "name_update" => self.name_write(&p, w, OpKind::Update),
            "name_delete" => self.name_write(&p, w, OpKind::Delete),
            "sendtoname" => self.sendtoname(&p, w),
            "randpay_mkchap" => self.randpay_mkchap(&p, w),
            "randpay_mktx" => self.randpay_mktx(&p, w),
            "randpay_accept" => self.randpay_accept(&p, w),
            "sendrawtransaction" => self.sendrawtransaction(&p),
            "devnet_fault" => self.devnet_fault(&p),
            "devnet_rpccount" => Ok(Uv::Obj(self.calls.iter().map(|(k, v)| (k.clone(), Uv::Num(v.to_string()))).collect())),
            _ => Err(RpcError::new(-32601, "Method not found")),
        };
        r.map_err(Some)
    }

    // ---- chain ------------------------------------------------------------

    fn getblockcount(&self, p: &Params) -> RpcResult {
        if !p.p.is_empty() {
            return Err(misc(help::GETBLOCKCOUNT));
        }
        Ok(Uv::int(self.height() as i64))
    }

    fn getblockchaininfo(&self, p: &Params) -> RpcResult {
        p.count(0, 0)?;
        let h = self.height() as i64;
        let buried = |active: bool, height: i64| {
            Uv::obj(vec![("type", Uv::str("buried")), ("active", Uv::Bool(active)), ("height", Uv::int(height))])
        };
        Ok(Uv::obj(vec![
            ("chain", Uv::str("regtest")),
            ("blocks", Uv::int(h)),
            ("headers", Uv::int(h)),
            ("bestblockhash", Uv::str(self.tip())),
            ("difficulty", Uv::Num("0.0003775035336197095".into())),
            ("mediantime", Uv::int(self.now())),
            ("verificationprogress", Uv::int(1)),
            ("initialblockdownload", Uv::Bool(self.in_ibd())),
            ("chainwork", Uv::str(format!("{:064x}", h + 1))),
            ("size_on_disk", Uv::int(400 * (h + 1))),
            ("pruned", Uv::Bool(false)),
            ("softforks", Uv::obj(vec![
                ("bip34", buried(false, 100_000_000)),
                ("bip66", buried(true, 0)),
                ("bip65", buried(true, 0)),
                ("csv", buried(true, 0)),
                ("segwit", buried(true, 0)),
            ])),
            ("warnings", Uv::str("")),
        ]))
    }

    fn tip(&self) -> String {
        if self.state.chain.tip.is_empty() { "0".repeat(64) } else { self.state.chain.tip.clone() }
    }

    fn getinfo(&self, w: &str) -> RpcResult {
        let balance = self.state.wallets.get(w).map_or(0, |x| x.balance);
        Ok(Uv::obj(vec![
            ("fullversion", Uv::str("v0.8.6.0-devnet")),
            ("version", Uv::int(80600)),
            ("protocolversion", Uv::int(70015)),
            ("walletversion", Uv::int(169900)),
            ("balance", Uv::amount(balance)),
            ("newmint", Uv::amount(0)),
            ("stake", Uv::amount(0)),
            ("blocks", Uv::int(self.height() as i64)),
            ("moneysupply", Uv::amount(BLOCK_REWARD * self.height() as i64)),
            ("timeoffset", Uv::int(0)),
            ("connections", Uv::int(0)),
            ("proxy", Uv::str("")),
            ("pow-difficulty", Uv::Num("0.0003775035336197095".into())),
            ("pos-difficulty", Uv::Num("0.06249910592947572".into())),
            ("testnet", Uv::Bool(false)),
            ("keypoololdest", Uv::int(self.now())),
            ("keypoolsize", Uv::int(2000)),
            ("paytxfee", Uv::amount(100)),
            ("relayfee", Uv::amount(100)),
            ("encrypted", Uv::Bool(false)),
            ("mintonly", Uv::Bool(false)),
            ("errors", Uv::str("")),
        ]))
    }

    /// Mine `n` blocks, paying the reward to `wallet`.
    pub fn mine(&mut self, n: u64, wallet: Option<String>) -> Vec<String> {
        let mut hashes = Vec::new();
        for _ in 0..n {
            let hash = random_hex(32);
            self.state.chain.mine_block(hash.clone());
            if let Some(w) = &wallet {
                self.wallet_mut(w).balance += BLOCK_REWARD;
            }
            hashes.push(hash);
        }
        self.dirty = true;
        hashes
    }

    fn generate(&mut self, p: &Params, wallet: Option<String>) -> RpcResult {
        p.count(1, 2)?;
        let n = p.int(0)?.clamp(0, 100_000) as u64;
        Ok(Uv::Arr(self.mine(n, wallet).into_iter().map(Uv::str).collect()))
    }

    fn generatetoaddress(&mut self, p: &Params) -> RpcResult {
        p.count(2, 3)?;
        let n = p.int(0)?.clamp(0, 100_000) as u64;
        let addr = String::from_utf8_lossy(p.str(1)?).into_owned();
        if Address::parse_with_hint(&addr, Some(Network::Regtest)).is_err() {
            return Err(RpcError::new(-5, "Error: Invalid address"));
        }
        let wallet = self.wallet_of(&addr).map(str::to_owned);
        Ok(Uv::Arr(self.mine(n, wallet).into_iter().map(Uv::str).collect()))
    }

    /// Mine a block when automine is on and something is waiting.
    fn after_tx(&mut self) {
        self.dirty = true;
        if self.automine && !self.state.chain.mempool.is_empty() {
            self.mine(1, None);
        }
    }

    // ---- wallet -----------------------------------------------------------

    fn getnewaddress(&mut self, p: &Params, w: &str) -> RpcResult {
        p.count(0, 2)?;
        let kind = p.opt_str(1)?.map(|b| String::from_utf8_lossy(b).into_owned());
        let legacy = match kind.as_deref() {
            None | Some("bech32") => false,
            Some("legacy") => true,
            Some(other) => return Err(RpcError::new(-5, format!("Unknown address type '{other}'"))),
        };
        let a = self.wallet_mut(w).new_address(legacy);
        self.dirty = true;
        Ok(Uv::str(a))
    }

    fn validateaddress(&self, p: &Params) -> RpcResult {
        p.count(1, 1)?;
        let s = String::from_utf8_lossy(p.str(0)?).into_owned();
        let Ok(a) = Address::parse_with_hint(&s, Some(Network::Regtest)) else {
            return Ok(Uv::obj(vec![("isvalid", Uv::Bool(false))]));
        };
        let h = hex::encode(a.hash);
        let (asm, script, ty) = match a.kind {
            AddressKind::P2pkh => (
                format!("OP_DUP OP_HASH160 {h} OP_EQUALVERIFY OP_CHECKSIG"),
                format!("76a914{h}88ac"),
                "pubkeyhash",
            ),
            AddressKind::P2sh => (format!("OP_HASH160 {h} OP_EQUAL"), format!("a914{h}87"), "scripthash"),
            AddressKind::P2wpkh => (format!("0 {h}"), format!("0014{h}"), "witness_v0_keyhash"),
        };
        let mut m = vec![
            ("isvalid", Uv::Bool(true)),
            ("address", Uv::str(&s)),
            ("isscript", Uv::Bool(a.kind == AddressKind::P2sh)),
            ("iswitness", Uv::Bool(a.kind == AddressKind::P2wpkh)),
        ];
        if a.kind == AddressKind::P2wpkh {
            m.push(("witness_version", Uv::int(0)));
            m.push(("witness_program", Uv::str(&h)));
        }
        m.push(("scriptPubKey", Uv::obj(vec![
            ("asm", Uv::str(asm)),
            ("hex", Uv::str(script)),
            ("type", Uv::str(ty)),
            ("reqSigs", Uv::int(1)),
            ("addresses", Uv::Arr(vec![Uv::str(&s)])),
        ])));
        Ok(Uv::obj(m))
    }

    fn signmessage(&mut self, p: &Params, w: &str) -> RpcResult {
        p.count(2, 2)?;
        let addr = String::from_utf8_lossy(p.str(0)?).into_owned();
        let message = p.str(1)?.to_vec();
        let a = Address::parse_with_hint(&addr, Some(Network::Regtest))
            .ok()
            .filter(|a| a.kind != AddressKind::P2sh)
            .ok_or_else(|| RpcError::new(-3, "Invalid address"))?;
        let key = self
            .state
            .wallets
            .get(w)
            .and_then(|wallet| wallet.key_for(&a))
            .ok_or_else(|| RpcError::new(-4, "Private key not available"))?;
        Ok(Uv::str(MessageSignature::sign(&key, &message).to_base64()))
    }

    fn verifymessage(&self, p: &Params) -> RpcResult {
        p.count(3, 3)?;
        let addr = String::from_utf8_lossy(p.str(0)?).into_owned();
        let sig = String::from_utf8_lossy(p.str(1)?).into_owned();
        let message = p.str(2)?;
        let a = Address::parse_with_hint(&addr, Some(Network::Regtest))
            .ok()
            .filter(|a| a.kind != AddressKind::P2sh)
            .ok_or_else(|| RpcError::new(-3, "Invalid address"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .map_err(|_| RpcError::new(-5, "Malformed base64 encoding"))?;
        let ok = MessageSignature::from_bytes(&raw).is_ok_and(|s| s.verifies(&a, message));
        Ok(Uv::Bool(ok))
    }

    fn loadwallet(&mut self, p: &Params) -> RpcResult {
        p.count(1, 1)?;
        let name = String::from_utf8_lossy(p.str(0)?).into_owned();
        if !self.state.wallets.contains_key(&name) {
            return Err(RpcError::new(-18, format!("Wallet {name} not found.")));
        }
        if self.state.loaded.contains(&name) {
            return Err(RpcError::new(-4, format!("Wallet file verification failed: Error loading wallet {name}. Duplicate -wallet filename specified.")));
        }
        self.state.loaded.push(name.clone());
        self.dirty = true;
        Ok(Uv::obj(vec![("name", Uv::str(name)), ("warning", Uv::str(""))]))
    }

    fn createwallet(&mut self, p: &Params) -> RpcResult {
        p.count(1, 3)?;
        let name = String::from_utf8_lossy(p.str(0)?).into_owned();
        if self.state.wallets.contains_key(&name) {
            return Err(RpcError::new(-4, format!("Wallet {name} already exists.")));
        }
        self.state.wallets.insert(name.clone(), Wallet::default());
        self.state.loaded.push(name.clone());
        self.dirty = true;
        Ok(Uv::obj(vec![("name", Uv::str(name)), ("warning", Uv::str(""))]))
    }

    fn unloadwallet(&mut self, p: &Params, path: &WalletPath) -> RpcResult {
        p.count(0, 1)?;
        let name = match (p.opt_str(0)?, path) {
            (Some(n), _) => String::from_utf8_lossy(n).into_owned(),
            (None, WalletPath::Named(n)) => n.clone(),
            (None, WalletPath::Root) => self.resolve_wallet(path)?,
        };
        let before = self.state.loaded.len();
        self.state.loaded.retain(|w| w != &name);
        if self.state.loaded.len() == before {
            return Err(RpcError::new(-18, "Requested wallet does not exist or is not loaded"));
        }
        self.dirty = true;
        Ok(Uv::Null)
    }

    // ---- names: reads -----------------------------------------------------

    fn encode_value(value: &[u8], vt: Option<&[u8]>) -> Uv {
        match vt {
            Some(b"hex") => Uv::str(hex::encode(value)),
            Some(b"base64") => Uv::str(base64::engine::general_purpose::STANDARD.encode(value)),
            _ => Uv::Str(value.to_vec()),
        }
    }

    fn name_show(&self, p: &Params) -> RpcResult {
        if p.p.is_empty() || p.p.len() > 3 {
            return Err(misc(help::NAME_SHOW));
        }
        let name = p.str(0)?;
        let vt = p.opt_str(1)?;
        self.ibd_check()?;
        let rec = self.state.chain.record(name).ok_or_else(|| RpcError::new(-4, "failed to read from name DB"))?;
        if let Some(path) = p.opt_str(2)?.filter(|s| !s.is_empty()) {
            // Like the node: write the raw value to a file on this host.
            let path = String::from_utf8_lossy(path).into_owned();
            std::fs::write(&path, rec.value()).map_err(|_| misc(format!("Failed to open file {path}")))?;
        }
        Ok(self.show_entry(name, rec, vt))
    }

    fn show_entry(&self, name: &[u8], rec: &NameRecord, vt: Option<&[u8]>) -> Uv {
        let h = self.height();
        let last = rec.last();
        let mut m = vec![
            ("name", Uv::Str(name.to_vec())),
            ("value", Self::encode_value(rec.value(), vt)),
            ("txid", Uv::str(&last.txid)),
            ("address", Uv::str(&last.address)),
            ("vout", Uv::int(i64::from(last.vout))),
            ("expires_in", Uv::int(rec.expires_in(h))),
            ("expires_at", Uv::int(rec.expires_at() as i64)),
            ("time", Uv::int(last.time)),
        ];
        if rec.is_deleted() {
            m.push(("deleted", Uv::Bool(true)));
        } else if rec.flagged_expired(h) {
            m.push(("expired", Uv::Bool(true)));
        }
        Uv::obj(m)
    }

    fn history_entry(&self, op: &NameOp, wallet: &str, vt: Option<&[u8]>, name: Option<&[u8]>) -> Uv {
        let mine = self.state.wallets.get(wallet).is_some_and(|w| w.owns(&op.address));
        let mut m = Vec::new();
        if let Some(n) = name {
            m.push(("name", Uv::Str(n.to_vec())));
        }
        m.push(("txid", Uv::str(&op.txid)));
        m.push(("time", Uv::int(op.time)));
        if name.is_none() {
            m.push(("height", Uv::int(op.height as i64)));
        }
        m.push(("address", Uv::str(&op.address)));
        if name.is_none() {
            m.push(("vout", Uv::int(i64::from(op.vout))));
        }
        if mine {
            m.push(("address_is_mine", Uv::str("true")));
        }
        m.push(("operation", Uv::str(op.kind.rpc_name())));
        if op.kind != OpKind::Delete {
            m.push(("days_added", Uv::int(op.days)));
            m.push(("value", Self::encode_value(&op.value, vt)));
        }
        Uv::obj(m)
    }

    fn name_history(&self, p: &Params, w: &str) -> RpcResult {
        p.count(1, 3)?;
        let name = p.str(0)?;
        let full = p.opt_bool(1)?.unwrap_or(false);
        let vt = p.opt_str(2)?;
        self.ibd_check()?;
        let rec = self.state.chain.record(name).ok_or_else(|| RpcError::new(-20, "failed to read from name DB"))?;
        let ops: &[NameOp] = if full {
            &rec.ops
        } else {
            if !rec.is_active(self.height()) {
                return Err(misc("record for this name exists, but this name is not active"));
            }
            &rec.ops[rec.chain_start()..]
        };
        Ok(Uv::Arr(ops.iter().map(|op| self.history_entry(op, w, vt, None)).collect()))
    }

    fn cut_value(value: &[u8], max: i64, vt: Option<&[u8]>) -> Uv {
        if max > 0 && value.len() > max as usize {
            let mut v = value[..max as usize].to_vec();
            v.extend_from_slice(b"\n...(value too large - use name_show to see full value)");
            return Self::encode_value(&v, vt);
        }
        Self::encode_value(value, vt)
    }

    fn name_filter(&self, p: &Params) -> RpcResult {
        p.count(0, 7)?;
        let re = p.opt_str(0)?.unwrap_or(b"");
        let maxage = p.opt_int(1)?.unwrap_or(0);
        let from = p.opt_int(2)?.unwrap_or(0).max(0) as usize;
        let nb = p.opt_int(3)?.unwrap_or(0).max(0) as usize;
        let stat = p.opt_str(4)?.is_some_and(|s| s == b"stat");
        let vt = p.opt_str(5)?;
        let maxlen = p.opt_int(6)?.unwrap_or(0);
        self.ibd_check()?;
        let regex = regex::bytes::Regex::new(&String::from_utf8_lossy(re))
            .map_err(|e| misc(format!("Invalid regular expression: {e}")))?;
        let h = self.height();
        if stat {
            return Ok(Uv::obj(vec![("blocks", Uv::int(h as i64)), ("count", Uv::int(0))]));
        }
        let mut hits: Vec<(&NameKey, &NameRecord)> = self
            .state
            .chain
            .names
            .iter()
            .filter(|(k, r)| !r.is_deleted() && regex.is_match(&k.0))
            .filter(|(_, r)| maxage <= 0 || (h as i64 - r.registered_at() as i64) < maxage)
            .collect();
        hits.sort_by_key(|(_, r)| r.registered_at());
        let take = if nb == 0 { usize::MAX } else { nb };
        Ok(Uv::Arr(
            hits.into_iter()
                .skip(from)
                .take(take)
                .map(|(k, r)| {
                    let mut m = vec![
                        ("name", Uv::Str(k.0.clone())),
                        ("value", Self::cut_value(r.value(), maxlen, vt)),
                        ("registered_at", Uv::int(r.registered_at() as i64)),
                        ("expires_in", Uv::int(r.expires_in(h))),
                    ];
                    if r.flagged_expired(h) {
                        m.push(("expired", Uv::Bool(true)));
                    }
                    Uv::obj(m)
                })
                .collect(),
        ))
    }

    fn name_scan(&self, p: &Params) -> RpcResult {
        p.count(0, 4)?;
        let start = NameKey(p.opt_str(0)?.unwrap_or(b"").to_vec());
        let _max_returned_is_ignored = p.opt_int(1)?;
        let maxlen = p.opt_int(2)?.unwrap_or(0);
        let vt = p.opt_str(3)?;
        self.ibd_check()?;
        let h = self.height();
        Ok(Uv::Arr(
            self.state
                .chain
                .names
                .range(start..)
                .filter(|(_, r)| !r.is_deleted())
                .map(|(k, r)| {
                    let mut m = vec![
                        ("name", Uv::Str(k.0.clone())),
                        ("value", Self::cut_value(r.value(), maxlen, vt)),
                        ("expires_in", Uv::int(r.expires_in(h))),
                    ];
                    if r.flagged_expired(h) {
                        m.push(("expired", Uv::Bool(true)));
                    }
                    Uv::obj(m)
                })
                .collect(),
        ))
    }

    fn name_list(&self, p: &Params, w: &str) -> RpcResult {
        p.count(0, 2)?;
        let only = p.opt_str(0)?.filter(|s| !s.is_empty());
        let vt = p.opt_str(1)?;
        self.ibd_check()?;
        let h = self.height();
        let wallet = self.state.wallets.get(w);
        let mut out: Vec<(Vec<u8>, Uv)> = Vec::new();
        for (k, r) in &self.state.chain.names {
            if r.is_deleted() || only.is_some_and(|o| o != k.0.as_slice()) {
                continue;
            }
            let owns = wallet.is_some_and(|x| x.owns(&r.last().address));
            let held = wallet.is_some_and(|x| x.held.contains(&hex::encode(&k.0)));
            if !owns && !held {
                continue;
            }
            let mut m = vec![("name", Uv::Str(k.0.clone())), ("value", Self::encode_value(r.value(), vt))];
            if !owns {
                m.push(("transferred", Uv::Bool(true)));
            }
            m.push(("address", Uv::str(&r.last().address)));
            m.push(("expires_in", Uv::int(r.expires_in(h))));
            if r.flagged_expired(h) {
                m.push(("expired", Uv::Bool(true)));
            }
            out.push((k.0.clone(), Uv::obj(m)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Uv::Arr(out.into_iter().map(|(_, v)| v).collect()))
    }

    fn name_mempool(&self, p: &Params, w: &str) -> RpcResult {
        p.count(0, 1)?;
        let vt = p.opt_str(0)?;
        let mut pending: Vec<&PendingOp> = self.state.chain.mempool.iter().collect();
        pending.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Uv::Arr(pending.into_iter().map(|pe| self.history_entry(&pe.op, w, vt, Some(&pe.name))).collect()))
    }

    fn name_indexinfo(&self, p: &Params) -> RpcResult {
        p.count(0, 1)?;
        let kind = p.opt_int(0)?.unwrap_or(0);
        if !(0..=2).contains(&kind) {
            return Err(RpcError::new(-8, "indextype out of range"));
        }
        let names = &self.state.chain.names;
        let bytes: usize = names.iter().map(|(k, r)| k.0.len() + r.ops.iter().map(|o| o.value.len() + 64).sum::<usize>()).sum();
        let mut hasher_input = Vec::new();
        for (k, r) in names {
            hasher_input.extend_from_slice(&k.0);
            hasher_input.extend_from_slice(r.last().txid.as_bytes());
        }
        let mut m = vec![
            ("height", Uv::int(self.height() as i64)),
            ("bestblock", Uv::str(self.tip())),
            ("records_name", Uv::int(names.len() as i64)),
            ("bytes_name", Uv::int(bytes as i64)),
            ("hash_name", Uv::str(hex::encode(ness_core::emercoin::sha256d(&hasher_input)))),
        ];
        if kind != 1 {
            m.push(("note", Uv::str("Name-address index is not available. Add nameaddress=1 to emercoin.conf to enable it.")));
        }
        Ok(Uv::obj(m))
    }

    // ---- names: writes ----------------------------------------------------

    fn name_write(&mut self, p: &Params, w: &str, kind: OpKind) -> RpcResult {
        let (min, max) = if kind == OpKind::Delete { (1, 1) } else { (3, 5) };
        if p.p.len() < min || p.p.len() > max {
            return Err(misc(match kind {
                OpKind::New => help::NAME_NEW.to_owned(),
                OpKind::Update => "name_update \"name\" \"value\" days ( \"toaddress\" \"valuetype\" )\n".to_owned(),
                OpKind::Delete => "name_delete \"name\"\n".to_owned(),
            }));
        }
        let name = p.str(0)?.to_vec();
        let (raw_value, days, toaddress, vt) = if kind == OpKind::Delete {
            (Vec::new(), 0, None, None)
        } else {
            (p.str(1)?.to_vec(), p.int(2)?, p.opt_str(3)?.filter(|s| !s.is_empty()), p.opt_str(4)?.filter(|s| !s.is_empty()))
        };
        self.ibd_check()?;
        let value = match vt {
            None => raw_value,
            Some(b"hex") => hex::decode(&raw_value).map_err(|_| internal("failed to decode value as hex"))?,
            Some(b"base64") => base64::engine::general_purpose::STANDARD
                .decode(&raw_value)
                .map_err(|_| internal("failed to decode value as base64"))?,
            Some(_) => {
                // Any other valuetype: the value names a file on the node's host.
                let path = String::from_utf8_lossy(&raw_value).into_owned();
                let data = std::fs::read(&path).map_err(|_| internal("failed to open file"))?;
                if data.len() > MAX_VALUE_LENGTH {
                    return Err(internal("file is larger than maximum allowed size"));
                }
                data
            }
        };
        let owner = match toaddress {
            Some(a) => {
                let a = String::from_utf8_lossy(a).into_owned();
                match Address::parse_with_hint(&a, Some(Network::Regtest)) {
                    Ok(_) => Some(a),
                    Err(_) => return Err(RpcError::new(-5, "emercoin address is invalid")),
                }
            }
            None => None,
        };
        let mut err = String::new();
        match kind {
            OpKind::New if days < 1 => err.push_str("rental days must be greater than 0.\n"),
            OpKind::Update if days < 0 => err.push_str("rental days must be greater or equal 0.\n"),
            _ if days > MAX_RENTAL_DAYS => err.push_str("rental days value is too large.\n"),
            _ => {}
        }
        if name.len() > MAX_NAME_LENGTH {
            err.push_str("name is too long.\n");
        }
        if value.len() > MAX_VALUE_LENGTH {
            err.push_str("value is too long.\n");
        }
        if !err.is_empty() {
            return Err(internal(err));
        }
        if kind != OpKind::Delete && value.is_empty() {
            return Err(internal("value must not be empty"));
        }
        let pending = self.state.chain.pending_for(&name);
        if let Some(first) = pending.first() {
            return Err(internal(format!(
                "there are {} pending operations on that name, including {}",
                pending.len(),
                first.op.txid
            )));
        }
        let h = self.height();
        match (kind, self.state.chain.record(&name)) {
            (OpKind::New, Some(r)) if r.is_active(h) => return Err(internal("name_new on an unexpired name")),
            (OpKind::New, _) => {}
            (_, Some(r)) if r.is_active(h) => {
                let mine = self.state.wallets.get(w).is_some_and(|x| x.owns(&r.last().address));
                if !mine {
                    return Err(internal("prev name tx is not yours or is not spendable"));
                }
            }
            (k, _) => return Err(internal(format!("{} on an inactive name", k.rpc_name()))),
        }
        let balance = self.state.wallets.get(w).map_or(0, |x| x.balance);
        if balance < NAME_FEE {
            return Err(RpcError::new(-6, "Insufficient funds"));
        }
        let address = match owner {
            Some(a) => a,
            None => self.wallet_mut(w).new_address(false),
        };
        let txid = random_hex(32);
        let now = self.now();
        let wallet = self.wallet_mut(w);
        wallet.balance -= NAME_FEE;
        wallet.held.insert(hex::encode(&name));
        if let Some(other) = self.wallet_of(&address).map(str::to_owned) {
            self.wallet_mut(&other).held.insert(hex::encode(&name));
        }
        let vout = (rand::random::<u8>() & 1) as u32;
        self.state.chain.mempool.push(PendingOp {
            name,
            op: NameOp { kind, txid: txid.clone(), height: 0, time: now, address, vout, days, value },
        });
        self.after_tx();
        Ok(Uv::str(txid))
    }

    fn sendtoname(&mut self, p: &Params, w: &str) -> RpcResult {
        p.count(2, 4)?;
        let name = p.str(0)?.to_vec();
        let amount = p.amount(1)?;
        let h = self.height();
        let Some(rec) = self.state.chain.record(&name).filter(|r| r.is_active(h)) else {
            return Err(RpcError::new(-5, "Name not found"));
        };
        let to = rec.last().address.clone();
        let from = self.wallet_mut(w);
        if from.balance < amount {
            return Err(RpcError::new(-6, "Insufficient funds"));
        }
        from.balance -= amount;
        if let Some(other) = self.wallet_of(&to).map(str::to_owned) {
            self.wallet_mut(&other).balance += amount;
        }
        self.dirty = true;
        Ok(Uv::obj(vec![("sending to", Uv::str(to)), ("transaction", Uv::str(random_hex(32)))]))
    }

    // ---- RANDPAY ----------------------------------------------------------

    fn randpay_mkchap(&mut self, p: &Params, w: &str) -> RpcResult {
        if p.p.len() != 3 {
            return Err(misc(help::RANDPAY_MKCHAP));
        }
        let amount = p.numeric(0, "amount")?;
        let risk = p.numeric(1, "risk")?;
        let _timeout = p.numeric(2, "timeout")?;
        let amount = (amount * COIN as f64).round() as i64;
        if amount <= 0 {
            return Err(RpcError::new(-3, "Invalid amount for challenge"));
        }
        let risk = risk as i64;
        if risk == 0 {
            return Err(misc("Division by zero"));
        }
        let risk = u32::try_from(risk).map_err(|_| RpcError::new(-3, "Invalid risk"))?;
        let c = Challenge::new(amount, risk, w);
        let chap = c.chap();
        self.challenges.push(c);
        Ok(Uv::str(chap))
    }

    fn randpay_mktx(&mut self, p: &Params, w: &str) -> RpcResult {
        p.count(2, 3)?;
        let chap = String::from_utf8_lossy(p.str(0)?).into_owned();
        let timeout = p.numeric(1, "timeout")?;
        let flags = if p.p.len() > 2 { p.numeric(2, "flags")? as i64 } else { 0 };
        let Some((amount_s, rest)) = chap.split_once(':') else {
            return Err(RpcError::new(-3, "Invalid chap format, must be amount[:]dec:hex"));
        };
        let Some((risk_s, hex_s)) = rest.split_once(':') else {
            return Err(RpcError::new(-3, "Invalid chap format, must be amount:dec[:]hex"));
        };
        let risk: u32 = risk_s.parse().map_err(|_| RpcError::new(-3, "Invalid chap, risk must be a number"))?;
        if risk == 0 {
            return Err(RpcError::new(-3, "Invalid chap, risk must not be zero"));
        }
        let amount = parse_money(amount_s).unwrap_or(0);
        if amount <= 0 {
            return Err(RpcError::new(-3, "Invalid amount for send"));
        }
        let c: [u8; 20] = hex::decode(hex_s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| RpcError::new(-3, "Invalid chap, bad hex"))?;
        let balance = self.state.wallets.get(w).map_or(0, |x| x.balance);
        if amount > balance {
            return Err(RpcError::new(-6, "Insufficient funds"));
        }
        if amount > balance - self.locked(w) {
            return Err(RpcError::new(-4, "Insufficient funds"));
        }
        let ticket = Ticket::new(&c, risk, amount, flags & 2 != 0, w);
        self.locks.push(Lock {
            wallet: w.to_owned(),
            amount,
            until: Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 1e7)),
        });
        Ok(Uv::str(ticket.to_hex()))
    }

    fn randpay_accept(&mut self, p: &Params, w: &str) -> RpcResult {
        p.count(1, 2)?;
        let hexs = String::from_utf8_lossy(p.str_typed(0)?).into_owned();
        let flags = if p.p.len() > 1 { p.int_typed(1)? } else { 0 };
        let ticket = Ticket::from_hex(&hexs).ok_or_else(|| RpcError::new(-22, "TX decode failed"))?;
        if self.state.broadcast_tickets.contains(&ticket.id()) {
            return Err(RpcError::new(-26, "18: txn-mempool-conflict"));
        }
        let Some(pos) = self.challenges.iter().position(|c| c.covers(&ticket.paid)) else {
            return Err(RpcError::new(-5, "Address in the vout[0] does not match any available challenge, unable to sign randpay-in"));
        };
        // A challenge is used once, won or lost.
        let c = self.challenges.remove(pos);
        let won = ticket.paid == c.x;
        let send = won
            && match flags {
                1 => ticket.amount >= c.amount,
                2 => ticket.amount == c.amount,
                3 => false,
                _ => true,
            };
        if send && !ticket.p2pkh {
            return Err(RpcError::new(-4, "Error: The transaction was rejected! Reason: bad-witness-nonstandard (code 64)"));
        }
        if send {
            self.state.broadcast_tickets.insert(ticket.id());
            let paid = ticket.amount.min(self.state.wallets.get(&ticket.payer).map_or(0, |x| x.balance));
            self.wallet_mut(&ticket.payer).balance -= paid;
            self.wallet_mut(&c.wallet).balance += paid;
            // The payer's locked coins are spent.
            if let Some(i) = self.locks.iter().position(|l| l.wallet == ticket.payer && l.amount == ticket.amount) {
                self.locks.remove(i);
            }
            self.dirty = true;
        }
        let _ = w;
        Ok(Uv::obj(vec![
            ("txid", Uv::str(random_hex(32))),
            ("amount", Uv::amount(ticket.amount)),
            ("expected", Uv::amount(c.amount)),
            ("risk", Uv::int(i64::from(c.risk))),
            ("won", Uv::Bool(won)),
            ("sent", Uv::Bool(send)),
        ]))
    }

    fn sendrawtransaction(&mut self, p: &Params) -> RpcResult {
        p.count(1, 2)?;
        let hexs = String::from_utf8_lossy(p.str_typed(0)?).into_owned();
        let ticket = Ticket::from_hex(&hexs).ok_or_else(|| RpcError::new(-22, "TX decode failed"))?;
        if self.state.broadcast_tickets.contains(&ticket.id()) {
            return Err(RpcError::new(-27, "transaction already in block chain"));
        }
        // An unsigned randpay input can only be spent by the winner's key.
        Err(RpcError::new(
            -26,
            "randpay: mandatory-script-verify-flag-failed (Operation not valid with the current stack size) (code 236)",
        ))
    }

    // ---- devnet control ---------------------------------------------------

    fn devnet_fault(&mut self, p: &Params) -> RpcResult {
        p.count(1, 2)?;
        let mode = String::from_utf8_lossy(p.str(0)?).into_owned();
        self.fault = match mode.as_str() {
            "none" => Fault::None,
            "warmup" => Fault::Warmup(
                p.opt_str(1)?.map_or("Verifying wallet(s)...".to_owned(), |s| String::from_utf8_lossy(s).into_owned()),
            ),
            "busy" => Fault::Busy,
            "hang" => Fault::Hang,
            "garbage" => Fault::Garbage,
            "drop" => Fault::Drop,
            other => return Err(RpcError::new(-8, format!("unknown fault '{other}' (none, warmup, busy, hang, garbage, drop)"))),
        };
        Ok(Uv::str(mode))
    }
}

/// Wallet methods: routed to a wallet, disabled without one.
const WALLET_METHODS: &[&str] = &[
    "getbalance",
    "getnewaddress",
    "signmessage",
    "generate",
    "name_new",
    "name_update",
    "name_delete",
    "name_list",
    "name_history",
    "name_mempool",
    "sendtoname",
    "randpay_mkchap",
    "randpay_mktx",
    "randpay_accept",
    "getinfo",
];

fn network_info() -> Uv {
    let net = |name: &str, limited: bool| {
        Uv::obj(vec![
            ("name", Uv::str(name)),
            ("limited", Uv::Bool(limited)),
            ("reachable", Uv::Bool(!limited)),
            ("proxy", Uv::str("")),
            ("proxy_randomize_credentials", Uv::Bool(false)),
        ])
    };
    Uv::obj(vec![
        ("version", Uv::int(190200)),
        ("subversion", Uv::str("/Satoshi:0.19.2/")),
        ("protocolversion", Uv::int(70015)),
        ("localservices", Uv::str("0000000000000409")),
        ("localservicesnames", Uv::Arr(vec![Uv::str("NETWORK"), Uv::str("WITNESS"), Uv::str("NETWORK_LIMITED")])),
        ("localrelay", Uv::Bool(true)),
        ("timeoffset", Uv::int(0)),
        ("networkactive", Uv::Bool(true)),
        ("connections", Uv::int(0)),
        ("networks", Uv::Arr(vec![net("ipv4", false), net("ipv6", false), net("onion", true)])),
        ("relayfee", Uv::Num("0.000100".into())),
        ("incrementalfee", Uv::Num("0.000100".into())),
        ("localaddresses", Uv::Arr(vec![])),
        ("warnings", Uv::str("")),
    ])
}

/// Positional parameters with the node's two error styles: old-style name methods
/// (-1 "JSON value is not … as expected") and RPCTypeCheck (-3 "Expected type …").
struct Params<'a> {
    method: &'a str,
    p: &'a [Uv],
}

impl Params<'_> {
    fn count(&self, min: usize, max: usize) -> Result<(), RpcError> {
        if self.p.len() < min || self.p.len() > max {
            return Err(misc(format!("{} (wrong number of parameters: {} given)\n", self.method, self.p.len())));
        }
        Ok(())
    }

    fn present(&self, i: usize) -> Option<&Uv> {
        self.p.get(i).filter(|v| !matches!(v, Uv::Null))
    }

    fn str(&self, i: usize) -> Result<&[u8], RpcError> {
        match self.p.get(i) {
            Some(Uv::Str(s)) => Ok(s),
            _ => Err(misc("JSON value is not a string as expected")),
        }
    }

    fn opt_str(&self, i: usize) -> Result<Option<&[u8]>, RpcError> {
        match self.present(i) {
            None => Ok(None),
            Some(Uv::Str(s)) => Ok(Some(s)),
            Some(_) => Err(misc("JSON value is not a string as expected")),
        }
    }

    fn int(&self, i: usize) -> Result<i64, RpcError> {
        self.p.get(i).and_then(Uv::as_i64).ok_or_else(|| misc("JSON value is not an integer as expected"))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, RpcError> {
        match self.present(i) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| misc("JSON value is not an integer as expected")),
        }
    }

    fn opt_bool(&self, i: usize) -> Result<Option<bool>, RpcError> {
        match self.present(i) {
            None => Ok(None),
            Some(Uv::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(misc("JSON value is not a boolean as expected")),
        }
    }

    fn amount(&self, i: usize) -> Result<i64, RpcError> {
        let v = self.p.get(i).ok_or_else(|| misc("missing amount"))?;
        let f = match v {
            Uv::Num(n) => n.parse::<f64>().ok(),
            Uv::Str(s) => std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()),
            _ => None,
        }
        .ok_or_else(|| RpcError::new(-3, "Amount is not a number or string"))?;
        let units = (f * COIN as f64).round() as i64;
        if units <= 0 {
            return Err(RpcError::new(-3, "Invalid amount for send"));
        }
        Ok(units)
    }

    /// RANDPAY's own check: "Invalid type provided. <name> parameter must be numeric."
    fn numeric(&self, i: usize, name: &str) -> Result<f64, RpcError> {
        self.p
            .get(i)
            .and_then(Uv::as_f64)
            .ok_or_else(|| RpcError::new(-3, format!("Invalid type provided. {name} parameter must be numeric.")))
    }

    fn type_error(expected: &str, got: &Uv) -> RpcError {
        RpcError::new(-3, format!("Expected type {expected}, got {}", got.type_name()))
    }

    fn str_typed(&self, i: usize) -> Result<&[u8], RpcError> {
        match self.p.get(i) {
            Some(Uv::Str(s)) => Ok(s),
            Some(other) => Err(Self::type_error("string", other)),
            None => Err(misc("missing parameter")),
        }
    }

    fn int_typed(&self, i: usize) -> Result<i64, RpcError> {
        match self.p.get(i) {
            Some(v @ Uv::Num(_)) => v.as_i64().ok_or_else(|| RpcError::new(-3, "Invalid integer")),
            Some(other) => Err(Self::type_error("number", other)),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpccount_counts_every_answered_call_but_itself() {
        let mut node = Node::fresh();
        for _ in 0..3 {
            node.call(&WalletPath::Root, "getblockcount", &[]).unwrap();
        }
        // Refused calls count too: the node answered them.
        assert!(node.call(&WalletPath::Root, "name_show", &[]).is_err());
        let counts = node.call(&WalletPath::Root, "devnet_rpccount", &[]).unwrap();
        let Uv::Obj(fields) = counts else { panic!("not an object: {counts:?}") };
        assert_eq!(fields, vec![("getblockcount".to_owned(), Uv::Num("3".into())), ("name_show".to_owned(), Uv::Num("1".into()))]);
    }
}
