//! Lua extension points (docs/hooks.md): one script, named in each host's
//! configuration, whose functions the hosts call when they exist —
//!
//! - `on_enum(ctx)` after ENUM resolution: reorder, drop or add routes, or reject;
//! - `tariff(ctx)` for RANDPAY: the price, risk and interval of this call;
//! - `on_sms(msg)` before an SMS is sealed: drop, tag or route it to another renter;
//! - `on_trunk(ctx)`: the trunk for a destination.
//!
//! The same script runs unchanged in Kamailio (one state per process, made
//! after fork), Asterisk and the SMS forwarder. A script that fails, loops or
//! allocates without bound is stopped (sandbox.rs: an instruction budget and a
//! memory cap), the failure is logged with the script's line, and the host
//! does what it would do without the hook. A reload that does not compile
//! keeps the running script.
//!
//! - context.rs: what hooks see and answer, as Rust types;
//! - sandbox.rs: the Lua state, the `ness` table, the limits.

pub mod context;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{Lua, Table, Value};

pub use context::{CallCtx, Candidate, EnumCtx, EnumDecision, SmsCtx, SmsDecision, TariffDecision, TrunkCtx};
use sandbox::{BUDGET_MESSAGE, Budget};

/// The hooks' settings, the same keys in every host (`hooks_*` modparams,
/// privateness.conf `[hooks]`, the forwarder's `[hooks]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSettings {
    pub script: PathBuf,
    /// Lua instructions one hook call may run (checked every 1000).
    pub instructions: u64,
    /// Bytes the script's state may hold in all.
    pub memory_limit: usize,
    pub allow_os: bool,
    pub allow_io: bool,
}

impl HookSettings {
    pub const DEFAULT_INSTRUCTIONS: u64 = 1_000_000;
    pub const DEFAULT_MEMORY: usize = 16 << 20;

    pub fn new(script: impl Into<PathBuf>) -> HookSettings {
        HookSettings { script: script.into(), instructions: Self::DEFAULT_INSTRUCTIONS, memory_limit: Self::DEFAULT_MEMORY, allow_os: false, allow_io: false }
    }

    /// From a host's settings as written (the same four keys everywhere):
    /// defaults for what is not given, then checked.
    pub fn from_parts(script: impl Into<PathBuf>, instructions: Option<u64>, memory_kb: Option<u64>, allow: &str) -> Result<HookSettings, HookError> {
        let mut s = HookSettings::new(script);
        if let Some(n) = instructions {
            s.instructions = n;
        }
        if let Some(kb) = memory_kb {
            s.memory_limit = usize::try_from(kb).unwrap_or(usize::MAX).saturating_mul(1024);
        }
        s.set_allow(allow)?;
        s.check()?;
        Ok(s)
    }

    /// `allow`: a list like `os,io` (empty: neither).
    pub fn set_allow(&mut self, list: &str) -> Result<(), HookError> {
        self.allow_os = false;
        self.allow_io = false;
        for item in list.split([',', ' ', '|']).map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "os" => self.allow_os = true,
                "io" => self.allow_io = true,
                other => return Err(HookError::Setting(format!("hooks allow {other:?}: only \"os\" and \"io\" can be allowed"))),
            }
        }
        Ok(())
    }

    /// Check the limits (1000 to 1e9 instructions, 256 KiB to 1 GiB).
    pub fn check(&self) -> Result<(), HookError> {
        if !(1000..=1_000_000_000).contains(&self.instructions) {
            return Err(HookError::Setting(format!("hooks instructions {} is not 1000 to 1000000000", self.instructions)));
        }
        if !((256 << 10)..=(1 << 30)).contains(&self.memory_limit) {
            return Err(HookError::Setting(format!("hooks memory {} bytes is not 256 KiB to 1 GiB", self.memory_limit)));
        }
        Ok(())
    }
}

/// What the host lends scripts (`ness.nvs_get`, `ness.enum`). Each call is
/// bounded by the host's own deadlines; errors come back to the script as
/// `nil, reason`.
pub trait HookHost: Send + Sync {
    fn nvs_get(&self, name: &str) -> Result<Option<String>, String>;
    fn enum_lookup(&self, number: &str) -> Result<Vec<String>, String>;
}

/// A host without the node: both say so.
pub struct NoNode;

impl HookHost for NoNode {
    fn nvs_get(&self, _: &str) -> Result<Option<String>, String> {
        Err("this host has no Emercoin node".into())
    }
    fn enum_lookup(&self, _: &str) -> Result<Vec<String>, String> {
        Err("this host has no Emercoin node".into())
    }
}

/// Why a hook did not decide (the host then does what it does without it).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks: {0}")]
    Setting(String),
    #[error("hooks: cannot read the script {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("hooks: the script does not compile: {0}")]
    Compile(String),
    #[error("hooks: {hook} failed: {message}")]
    Runtime { hook: &'static str, message: String },
    #[error("hooks: {hook} was stopped: it ran more than {limit} instructions")]
    Budget { hook: &'static str, limit: u64 },
    #[error("hooks: {hook} was stopped: the script's memory passed {limit} bytes")]
    Memory { hook: &'static str, limit: usize },
    #[error("hooks: {hook} returned something it may not: {message}")]
    BadResult { hook: &'static str, message: String },
}

/// What the hooks did (per state: per process in Kamailio).
#[derive(Debug, Default)]
pub struct HookStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub stopped: AtomicU64,
    pub reloads: AtomicU64,
}

/// A loaded script.
pub struct Hooks {
    settings: HookSettings,
    lua: Lua,
    budget: Arc<Budget>,
    host: Arc<dyn HookHost>,
    pub stats: HookStats,
}

/// The first line of a Lua error (the traceback follows it), without mlua's prefix.
fn first_line(e: &mlua::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("runtime error: ").trim_start_matches("syntax error: ").to_owned()
}

fn chunk_name(path: &Path) -> String {
    format!("@{}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string()))
}

fn compile(settings: &HookSettings, host: Arc<dyn HookHost>) -> Result<(Lua, Arc<Budget>), HookError> {
    settings.check()?;
    let text = std::fs::read_to_string(&settings.script).map_err(|source| HookError::Read { path: settings.script.clone(), source })?;
    let budget = Arc::new(Budget::default());
    let lua = sandbox::new_state(settings, host, budget.clone()).map_err(|e| HookError::Compile(first_line(&e)))?;
    // The script's top level runs under the same limits as a hook.
    budget.limit.store(settings.instructions, Ordering::Relaxed);
    budget.used.store(0, Ordering::Relaxed);
    lua.load(text.as_str()).set_name(chunk_name(&settings.script)).exec().map_err(|e| HookError::Compile(first_line(&e)))?;
    Ok((lua, budget))
}

impl Hooks {
    /// Read and run the script (its top level defines the hooks).
    pub fn load(settings: HookSettings, host: Arc<dyn HookHost>) -> Result<Hooks, HookError> {
        let (lua, budget) = compile(&settings, host.clone())?;
        Ok(Hooks { settings, lua, budget, host, stats: HookStats::default() })
    }

    pub fn settings(&self) -> &HookSettings {
        &self.settings
    }

    /// Read the script again; if it does not compile, the running one stays.
    pub fn reload(&mut self) -> Result<(), HookError> {
        let (lua, budget) = compile(&self.settings, self.host.clone())?;
        self.lua = lua;
        self.budget = budget;
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Which of the four hooks the script defines.
    pub fn defined(&self) -> Vec<&'static str> {
        ["on_enum", "tariff", "on_sms", "on_trunk"].into_iter().filter(|h| matches!(self.lua.globals().get::<Value>(*h), Ok(Value::Function(_)))).collect()
    }

    /// Call `hook(arg)` under the limits. `Ok(None)`: the hook is not defined.
    fn call(&self, hook: &'static str, arg: impl FnOnce(&Lua) -> mlua::Result<Table>) -> Result<Option<Value>, HookError> {
        self.call_with(hook, |lua| arg(lua).and_then(|t| sandbox::readonly(lua, t)).map(Value::Table))
    }

    /// As `call`, with the read-only context made by `ctx`.
    fn call_with(&self, hook: &'static str, ctx: impl FnOnce(&Lua) -> mlua::Result<Value>) -> Result<Option<Value>, HookError> {
        let f = match self.lua.globals().get::<Value>(hook) {
            Ok(Value::Function(f)) => f,
            _ => return Ok(None),
        };
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.budget.limit.store(self.settings.instructions, Ordering::Relaxed);
        self.budget.used.store(0, Ordering::Relaxed);
        let outcome = ctx(&self.lua).and_then(|ctx| f.call::<Value>(ctx));
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let failed = if matches!(e, mlua::Error::MemoryError(_)) || e.to_string().contains("not enough memory") {
                    // Give the memory back before the next call.
                    let _ = self.lua.gc_collect();
                    HookError::Memory { hook, limit: self.settings.memory_limit }
                } else if e.to_string().contains(BUDGET_MESSAGE) {
                    HookError::Budget { hook, limit: self.settings.instructions }
                } else {
                    HookError::Runtime { hook, message: first_line(&e) }
                };
                let counter = if matches!(failed, HookError::Runtime { .. }) { &self.stats.failures } else { &self.stats.stopped };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(failed)
            }
        }
    }

    /// `on_enum(ctx)`. `Ok(None)`: no hook, or it returned nil (keep the routes).
    pub fn on_enum(&self, ctx: &EnumCtx) -> Result<Option<EnumDecision>, HookError> {
        const HOOK: &str = "on_enum";
        let bad = |message: String| HookError::BadResult { hook: HOOK, message };
        let v = self.call_with(HOOK, |lua| sandbox::enum_ctx(lua, ctx))?;
        let t = match v {
            None | Some(Value::Nil) => return Ok(None),
            Some(Value::Table(t)) => t,
            Some(other) => return Err(bad(format!("a {} (return nil, a list of routes, or {{reject = code}})", other.type_name()))),
        };
        if let Ok(code) = t.get::<Value>("reject")
            && !code.is_nil()
        {
            let code = match code {
                Value::Integer(c) if (400..=699).contains(&c) => c as u16,
                other => return Err(bad(format!("reject = {other:?} is not a SIP status 400 to 699"))),
            };
            let reason = t.get::<Option<String>>("reason").map_err(|e| bad(first_line(&e)))?.unwrap_or_else(|| "Rejected".into());
            if reason.chars().any(|c| c.is_control()) || reason.len() > 128 {
                return Err(bad("reason must be one line of at most 128 characters".into()));
            }
            return Ok(Some(EnumDecision::Reject { code, reason }));
        }
        let mut routes = Vec::new();
        for (i, item) in t.sequence_values::<Value>().enumerate() {
            let item = item.map_err(|e| bad(first_line(&e)))?;
            // Routes are tried in list order: q falls by 0.01 per place unless given.
            let q = (1000 - 10 * i as i32).max(0);
            let c = match item {
                Value::String(s) => {
                    let uri = s.to_str().map_err(|e| bad(e.to_string()))?.to_owned();
                    let known = ctx.candidates.iter().find(|c| c.uri == uri);
                    Candidate { order: known.map_or(0, |c| c.order), preference: known.map_or(0, |c| c.preference), q, uri }
                }
                Value::Table(r) => {
                    let uri: String = r.get("uri").map_err(|_| bad(format!("route {} has no uri", i + 1)))?;
                    Candidate {
                        order: r.get::<Option<u16>>("order").ok().flatten().unwrap_or(0),
                        preference: r.get::<Option<u16>>("preference").ok().flatten().unwrap_or(0),
                        q: r.get::<Option<i32>>("q").ok().flatten().unwrap_or(q).clamp(-1, 1000),
                        uri,
                    }
                }
                other => return Err(bad(format!("route {} is a {}", i + 1, other.type_name()))),
            };
            if !(c.uri.starts_with("sip:") || c.uri.starts_with("sips:") || c.uri.starts_with("tel:")) || c.uri.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                return Err(bad(format!("route {} {:?} is not a sip:, sips: or tel: URI", i + 1, c.uri)));
            }
            routes.push(c);
        }
        Ok(Some(EnumDecision::Route(routes)))
    }

    /// `tariff(ctx)`. `Ok(None)`: no hook, or nil (the configured tariff).
    pub fn tariff(&self, ctx: &CallCtx) -> Result<Option<TariffDecision>, HookError> {
        const HOOK: &str = "tariff";
        let bad = |message: String| HookError::BadResult { hook: HOOK, message };
        let v = self.call(HOOK, |lua| {
            let t = lua.create_table()?;
            t.set("number", ctx.number.as_str())?;
            t.set("caller", ctx.caller.as_str())?;
            if let Some(d) = &ctx.default {
                let dt = lua.create_table()?;
                dt.set("price", d.price.as_str())?;
                dt.set("risk", d.risk)?;
                dt.set("interval", d.interval_secs)?;
                dt.set("grace", d.grace_secs)?;
                t.set("default", dt)?;
            }
            Ok(t)
        })?;
        let t = match v {
            None | Some(Value::Nil) => return Ok(None),
            Some(Value::Table(t)) => t,
            Some(other) => return Err(bad(format!("a {} (return nil or {{price=, risk=, interval=}})", other.type_name()))),
        };
        let price = match t.get::<Value>("price").map_err(|e| bad(first_line(&e)))? {
            Value::String(s) => s.to_str().map_err(|e| bad(e.to_string()))?.trim().to_owned(),
            Value::Number(n) => format!("{n}"),
            Value::Integer(n) => format!("{n}"),
            other => return Err(bad(format!("price is a {}", other.type_name()))),
        };
        let decimal = price.split_once('.').map_or(price.as_str(), |(a, _)| a);
        if price.is_empty() || !price.chars().all(|c| c.is_ascii_digit() || c == '.') || decimal.is_empty() || price.matches('.').count() > 1 {
            return Err(bad(format!("price {price:?} is not a decimal amount of EMC")));
        }
        let default = ctx.default.as_ref();
        let int = |k: &str, fallback: Option<u32>, min: u32| -> Result<u32, HookError> {
            match t.get::<Option<i64>>(k) {
                Ok(Some(n)) if n >= i64::from(min) && n <= i64::from(u32::MAX) => Ok(n as u32),
                Ok(Some(n)) => Err(bad(format!("{k} = {n} is below {min}"))),
                Ok(None) => fallback.ok_or_else(|| bad(format!("{k} is missing"))),
                Err(e) => Err(bad(format!("{k}: {}", first_line(&e)))),
            }
        };
        Ok(Some(TariffDecision {
            risk: int("risk", default.map(|d| d.risk), 1)?,
            interval_secs: int("interval", default.map(|d| d.interval_secs), 1)?,
            grace_secs: int("grace", Some(default.map_or(0, |d| d.grace_secs)), 0)?,
            price,
        }))
    }

    /// `on_sms(msg)`. `Ok(None)`: no hook; nil or true: deliver as usual.
    pub fn on_sms(&self, msg: &SmsCtx) -> Result<Option<SmsDecision>, HookError> {
        const HOOK: &str = "on_sms";
        let bad = |message: String| HookError::BadResult { hook: HOOK, message };
        let v = self.call(HOOK, |lua| {
            let t = lua.create_table()?;
            t.set("from", msg.from.as_str())?;
            t.set("text", msg.text.as_str())?;
            t.set("phone_id", msg.phone_id.as_str())?;
            t.set("renter", msg.renter.as_str())?;
            t.set("received", msg.received.as_str())?;
            Ok(t)
        })?;
        let deliver = SmsDecision::Deliver { tags: Vec::new(), renter: None };
        Ok(Some(match v {
            None => return Ok(None),
            Some(Value::Nil) | Some(Value::Boolean(true)) => deliver,
            Some(Value::Boolean(false)) => SmsDecision::Drop { reason: "dropped by on_sms".into() },
            Some(Value::Table(t)) => {
                if t.get::<Option<bool>>("drop").map_err(|e| bad(first_line(&e)))?.unwrap_or(false) {
                    let reason = t.get::<Option<String>>("reason").map_err(|e| bad(first_line(&e)))?.unwrap_or_else(|| "dropped by on_sms".into());
                    SmsDecision::Drop { reason }
                } else {
                    let tags = match t.get::<Value>("tags").map_err(|e| bad(first_line(&e)))? {
                        Value::Nil => Vec::new(),
                        Value::Table(list) => list.sequence_values::<String>().collect::<mlua::Result<Vec<_>>>().map_err(|e| bad(format!("tags: {}", first_line(&e))))?,
                        other => return Err(bad(format!("tags is a {}", other.type_name()))),
                    };
                    let renter = t.get::<Option<String>>("renter").map_err(|e| bad(first_line(&e)))?;
                    SmsDecision::Deliver { tags, renter }
                }
            }
            Some(other) => return Err(bad(format!("a {} (return nil, false, {{drop = true}} or {{tags = …, renter = …}})", other.type_name()))),
        }))
    }

    /// `on_trunk(ctx)`: a trunk name from `ctx.trunks`, or `Ok(None)`.
    pub fn on_trunk(&self, ctx: &TrunkCtx) -> Result<Option<String>, HookError> {
        const HOOK: &str = "on_trunk";
        let v = self.call(HOOK, |lua| {
            let t = lua.create_table()?;
            t.set("number", ctx.number.as_str())?;
            t.set("caller", ctx.caller.as_str())?;
            t.set("trunks", lua.create_sequence_from(ctx.trunks.iter().map(String::as_str))?)?;
            Ok(t)
        })?;
        match v {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => {
                let name = s.to_str().map_err(|e| HookError::BadResult { hook: HOOK, message: e.to_string() })?.to_owned();
                if ctx.trunks.contains(&name) {
                    Ok(Some(name))
                } else {
                    Err(HookError::BadResult { hook: HOOK, message: format!("no trunk is named {name:?} (trunks: {})", ctx.trunks.join(", ")) })
                }
            }
            Some(other) => Err(HookError::BadResult { hook: HOOK, message: format!("a {} (return a trunk's name or nil)", other.type_name()) }),
        }
    }
}

#[cfg(test)]
mod tests;
