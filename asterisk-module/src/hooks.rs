//! Lua hooks in Asterisk (docs/hooks.md): `on_enum(ctx)` runs inside
//! `EMC_ENUM_QUERY()` after the lookup, on the channel's own thread.
//!
//! privateness.conf `[hooks]`: `script`, `instructions`, `memory_kb`, `allow`.
//! The script is compiled at load and reload (a script that does not compile
//! declines the load, or is refused by a reload with its line, the running
//! one staying). `privateness reload hooks` reads it again.
//!
//! States: a small pool of Lua states, each behind its own lock; a channel
//! thread takes a free one (or waits for one, at most one hook's budget).
//! Not one per thread, as Kamailio has per process: a thread-local state
//! would leave destructors on Asterisk's threads that keep the module mapped
//! after `module unload` (engine.rs). The states are plain memory: they are
//! made and dropped on whichever Asterisk thread loads or unloads the module.

use std::sync::{Arc, Mutex, RwLock};

use ness_core::enumer::E164;
use ness_core::hooks::{CallCtx, Candidate, EnumCtx, EnumDecision, HookError, HookHost, HookSettings, Hooks, TariffDecision, TrunkCtx};
use ness_core::randpay::TariffHook;

use crate::engine;
use crate::log::awarn;

/// Lua states in the pool (calls at once that never wait for each other).
const POOL: usize = 4;

/// `[hooks]` as read from privateness.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HooksConf {
    pub script: Option<String>,
    pub instructions: Option<u64>,
    pub memory_kb: Option<u64>,
    pub allow: String,
}

impl HooksConf {
    /// From the `[hooks]` section's `(key, value, line)` entries.
    pub fn from_entries(entries: &[(String, String, i32)]) -> Result<HooksConf, String> {
        let mut c = HooksConf::default();
        for (key, value, line) in entries {
            let v = value.trim();
            let number = || v.parse::<u64>().map_err(|_| format!("[hooks] line {line}: {key} = {v:?} is not a number"));
            match key.trim().to_ascii_lowercase().as_str() {
                "script" => c.script = Some(v.to_owned()),
                "instructions" => c.instructions = Some(number()?),
                "memory_kb" => c.memory_kb = Some(number()?),
                "allow" => c.allow = v.to_owned(),
                other => return Err(format!("[hooks] line {line}: unknown setting {other:?} (known: script, instructions, memory_kb, allow)")),
            }
        }
        Ok(c)
    }

    pub fn settings(&self) -> Result<Option<HookSettings>, String> {
        let Some(script) = &self.script else { return Ok(None) };
        HookSettings::from_parts(script, self.instructions, self.memory_kb, &self.allow).map(Some).map_err(|e| e.to_string())
    }
}

/// Lends scripts the module's resolver, through the module thread.
struct AsteriskHost;

impl HookHost for AsteriskHost {
    fn nvs_get(&self, name: &str) -> Result<Option<String>, String> {
        let e = engine().ok_or("res_privateness is not running")?;
        e.name_show(name).map(|v| v.map(|n| n.value.to_string_lossy())).map_err(|e| e.to_string())
    }

    fn enum_lookup(&self, number: &str) -> Result<Vec<String>, String> {
        let e = engine().ok_or("res_privateness is not running")?;
        let n = E164::parse(number).map_err(|e| e.to_string())?;
        let l = e.lookup(&n).map_err(|e| e.to_string())?;
        Ok(ness_core::enumer::route::targets(&l.answer, "E2U+sip").into_iter().map(|t| t.uri).collect())
    }
}

/// The pool.
pub struct HookPool {
    states: Vec<Mutex<Hooks>>,
}

static POOL_NOW: RwLock<Option<Arc<HookPool>>> = RwLock::new(None);

impl HookPool {
    fn build(settings: &HookSettings) -> Result<HookPool, HookError> {
        let states = (0..POOL).map(|_| Hooks::load(settings.clone(), Arc::new(AsteriskHost)).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(HookPool { states })
    }

    fn with<R>(&self, f: impl FnOnce(&Hooks) -> R) -> R {
        for s in &self.states {
            if let Ok(h) = s.try_lock() {
                return f(&h);
            }
        }
        // All busy: wait for the first (each call is bounded by its budget).
        let h = self.states[0].lock().unwrap_or_else(|p| p.into_inner());
        f(&h)
    }

    pub fn defined(&self) -> Vec<&'static str> {
        self.with(|h| h.defined())
    }
}

/// Make the configured pool current (load and reload): `None` removes hooks.
/// A script that does not compile leaves the running pool in place.
pub fn install(settings: Option<&HookSettings>) -> Result<String, String> {
    let pool = match settings {
        None => None,
        Some(s) => Some(Arc::new(HookPool::build(s).map_err(|e| format!("{e} ({})", s.script.display()))?)),
    };
    let note = match &pool {
        None => String::new(),
        Some(p) => format!("; hooks: {:?}", p.defined()),
    };
    *POOL_NOW.write().unwrap_or_else(|p| p.into_inner()) = pool;
    Ok(note)
}

/// `privateness reload hooks`: the same settings, the file read again.
pub fn reload() -> Result<String, String> {
    let current = POOL_NOW.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(pool) = current else { return Err("no hooks: set script in privateness.conf [hooks]".into()) };
    let settings = pool.with(|h| h.settings().clone());
    let fresh = HookPool::build(&settings).map_err(|e| format!("{e}; the running script stays"))?;
    let defined = fresh.defined();
    *POOL_NOW.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(fresh));
    Ok(format!("{} reloaded: defines {defined:?}", settings.script.display()))
}

/// Drop the pool (unload).
pub fn clear() {
    POOL_NOW.write().unwrap_or_else(|p| p.into_inner()).take();
}

/// What `EMC_ENUM_QUERY` does after the hook.
pub enum Outcome {
    Keep,
    Route(Vec<String>),
    Reject(u16, String),
}

/// Run `on_enum` on the URIs found (no script, no hook, or a failing one: keep them).
pub fn on_enum(number: &E164, caller: &str, service: &str, uris: &[String]) -> Outcome {
    let Some(pool) = POOL_NOW.read().unwrap_or_else(|p| p.into_inner()).clone() else { return Outcome::Keep };
    let ctx = EnumCtx {
        number: number.to_string(),
        caller: caller.to_owned(),
        service: service.to_owned(),
        candidates: uris.iter().enumerate().map(|(i, u)| Candidate { uri: u.clone(), order: 0, preference: 0, q: (1000 - 10 * i as i32).max(0) }).collect(),
    };
    match pool.with(|h| h.on_enum(&ctx)) {
        Ok(None) => Outcome::Keep,
        Ok(Some(EnumDecision::Route(routes))) => Outcome::Route(routes.into_iter().map(|c| c.uri).collect()),
        Ok(Some(EnumDecision::Reject { code, reason })) => Outcome::Reject(code, reason),
        Err(e) => {
            awarn!("{e}; routing {number} without it");
            Outcome::Keep
        }
    }
}

/// `tariff(ctx)` for the RANDPAY payee: whichever pool is current when a call
/// is priced (the payee runs it on a blocking thread, not the module thread,
/// so `ness.nvs_get` can reach the node through it).
struct PoolTariff;

impl TariffHook for PoolTariff {
    fn tariff(&self, ctx: &CallCtx) -> Result<Option<TariffDecision>, HookError> {
        match POOL_NOW.read().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(pool) => pool.with(|h| h.tariff(ctx)),
            None => Ok(None),
        }
    }

    fn active(&self) -> bool {
        POOL_NOW.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

pub fn tariff_hook() -> Arc<dyn TariffHook> {
    Arc::new(PoolTariff)
}

/// `on_trunk` for `EMC_TRUNK`: a trunk name from `trunks`, or None.
pub fn on_trunk(number: &str, caller: &str, trunks: Vec<String>) -> Option<String> {
    if trunks.is_empty() {
        return None;
    }
    let pool = POOL_NOW.read().unwrap_or_else(|p| p.into_inner()).clone()?;
    let ctx = TrunkCtx { number: number.to_owned(), caller: caller.to_owned(), trunks };
    match pool.with(|h| h.on_trunk(&ctx)) {
        Ok(name) => name,
        Err(e) => {
            awarn!("{e}; no trunk chosen for {number}");
            None
        }
    }
}
