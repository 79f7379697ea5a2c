//! Lua hooks in Kamailio (docs/hooks.md): `on_enum(ctx)` runs inside
//! `emc_enum_query()` after the lookup, before the R-URI and branches are set.
//!
//! - modparams `hooks_script`, `hooks_instructions`, `hooks_memory_kb`,
//!   `hooks_allow`; mod_init compiles the script once to check it (a script
//!   that does not compile stops Kamailio at start, with its line) and drops
//!   that state: nothing is inherited through fork.
//! - Each process makes its own Lua state on first use (checked against the
//!   pid), so SIP workers never share one.
//! - `privateness.reload_hooks` compiles the file in the RPC process first: if
//!   it fails, the reply says why and every process keeps the running script;
//!   else a generation counter in shared memory tells each process to reload
//!   before its next hook call.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use ness_core::enumer::E164;
use ness_core::enumer::route::{Target, targets};
use ness_core::hooks::{CallCtx, Candidate, EnumCtx, EnumDecision, HookError, HookHost, HookSettings, Hooks, TariffDecision};
use ness_core::randpay::TariffHook;

use crate::ffi::sip_msg;
use crate::host::PvSpec;
use crate::log::{kinfo, kwarn};
use crate::worker::{stats, with_worker};

/// The modparams as given: script, instructions, memory in KiB, allow list.
pub static RAW: Mutex<(String, Option<u64>, Option<u64>, String)> = Mutex::new((String::new(), None, None, String::new()));
/// Checked in mod_init.
static SETTINGS: OnceLock<HookSettings> = OnceLock::new();
/// `$avp(emc_reject_code)` and `$avp(emc_reject_reason)`, resolved in mod_init.
static PV_REJECT: OnceLock<(PvSpec, PvSpec)> = OnceLock::new();
/// This process's state: (pid, generation loaded, hooks).
static STATE: Mutex<Option<(u32, u64, Hooks)>> = Mutex::new(None);

/// Apply one `hooks_*` modparam.
pub fn set(key: &str, text: &str) -> Result<(), String> {
    let mut raw = RAW.lock().unwrap_or_else(|p| p.into_inner());
    let number = || text.trim().parse::<u64>().map_err(|_| format!("{key}: {text:?} is not a number"));
    match key {
        "hooks_script" => raw.0 = text.trim().to_owned(),
        "hooks_instructions" => raw.1 = Some(number()?),
        "hooks_memory_kb" => raw.2 = Some(number()?),
        "hooks_allow" => raw.3 = text.to_owned(),
        _ => return Err(format!("unknown parameter {key}")),
    }
    Ok(())
}

/// Lends scripts this process's resolver (`ness.nvs_get`, `ness.enum`).
struct KamailioHost;

impl HookHost for KamailioHost {
    fn nvs_get(&self, name: &str) -> Result<Option<String>, String> {
        match with_worker(|w| w.name_show(name)) {
            None => Err("no resolver in this process".into()),
            Some(Ok(entry)) => Ok(entry.map(|e| e.value.to_string_lossy())),
            Some(Err(e)) => Err(e.to_string()),
        }
    }

    fn enum_lookup(&self, number: &str) -> Result<Vec<String>, String> {
        let n = E164::parse(number).map_err(|e| e.to_string())?;
        match with_worker(|w| w.lookup(&n)) {
            None => Err("no resolver in this process".into()),
            Some(Ok(l)) => Ok(targets(&l.answer, "E2U+sip").into_iter().map(|t| t.uri).collect()),
            Some(Err(e)) => Err(e.to_string()),
        }
    }
}

/// mod_init: check the settings and compile the script once.
pub fn init() -> Result<(), String> {
    let (script, instructions, memory_kb, allow) = RAW.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if script.is_empty() {
        return Ok(());
    }
    let s = HookSettings::from_parts(&script, instructions, memory_kb, &allow).map_err(|e| e.to_string())?;
    let hooks = Hooks::load(s.clone(), Arc::new(KamailioHost)).map_err(|e| format!("{e} ({script})"))?;
    kinfo!("hooks: {script} defines {:?}; {} instructions and {} KiB per process", hooks.defined(), s.instructions, s.memory_limit / 1024);
    let (Some(code), Some(reason)) = (PvSpec::resolve("$avp(emc_reject_code)"), PvSpec::resolve("$avp(emc_reject_reason)")) else {
        return Err("hooks: cannot resolve $avp(emc_reject_code)/$avp(emc_reject_reason)".into());
    };
    let _ = PV_REJECT.set((code, reason));
    drop(hooks);
    let _ = SETTINGS.set(s);
    Ok(())
}

fn generation() -> u64 {
    stats().map_or(0, |s| s.hooks_generation.load(Ordering::Relaxed))
}

/// Run `f` with this process's hooks (made, or reloaded, if needed); None
/// without a script.
pub fn with_hooks<R>(f: impl FnOnce(&Hooks) -> R) -> Option<R> {
    let settings = SETTINGS.get()?;
    let (pid, wanted) = (std::process::id(), generation());
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_some_and(|(p, _, _)| *p != pid) {
        // Another process's state (cannot happen: made after fork); never run it here.
        if let Some(s) = guard.take() {
            std::mem::forget(s);
        }
    }
    match guard.as_mut() {
        None => match Hooks::load(settings.clone(), Arc::new(KamailioHost)) {
            Ok(h) => *guard = Some((pid, wanted, h)),
            Err(e) => {
                kwarn!("{e}; routing without hooks in this process");
                return None;
            }
        },
        Some((_, seen, h)) if *seen != wanted => {
            *seen = wanted;
            match h.reload() {
                Ok(()) => kinfo!("hooks: reloaded {}", settings.script.display()),
                Err(e) => kwarn!("{e}; this process keeps the running script"),
            }
        }
        Some(_) => {}
    }
    guard.as_ref().map(|(_, _, h)| f(h))
}

/// `privateness.reload_hooks`: check the file here, then tell every process.
pub fn request_reload() -> Result<String, String> {
    let Some(settings) = SETTINGS.get() else {
        return Err("no hooks: set modparam(\"privateness\", \"hooks_script\", …)".into());
    };
    let hooks = Hooks::load(settings.clone(), Arc::new(KamailioHost)).map_err(|e| format!("{e}; every process keeps the running script"))?;
    let defined = hooks.defined();
    drop(hooks);
    let s = stats().ok_or("no shared memory")?;
    let g = s.hooks_generation.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(format!("{} compiles (defines {defined:?}); every process reloads it before its next call (generation {g})", settings.script.display()))
}

/// `tariff(ctx)` for the RANDPAY payee, on the RANDPAY process's own Lua
/// state. The payee runs it on a helper thread of that process (so a script
/// reading NVS never holds up the meter); its log lines reach Kamailio's log
/// through the process's own thread (log.rs).
struct ProcessTariff;

impl TariffHook for ProcessTariff {
    fn tariff(&self, ctx: &CallCtx) -> Result<Option<TariffDecision>, HookError> {
        with_hooks(|h| h.tariff(ctx)).unwrap_or(Ok(None))
    }

    fn active(&self) -> bool {
        SETTINGS.get().is_some()
    }
}

pub fn tariff_hook() -> Arc<dyn TariffHook> {
    Arc::new(ProcessTariff)
}

/// What `emc_enum_query()` does after the hook.
pub enum Outcome {
    Keep,
    Route(Vec<Target>),
    Reject(u16, String),
}

/// Run `on_enum` on the routes `found` (no script, no hook, or a failing
/// script: keep them; the failure is logged with the script's line).
pub fn on_enum(number: &E164, caller: &[u8], service: &str, found: &[Target]) -> Outcome {
    let ctx = EnumCtx {
        number: number.to_string(),
        caller: String::from_utf8_lossy(caller).into_owned(),
        service: service.to_owned(),
        candidates: found.iter().map(|t| Candidate { uri: t.uri.clone(), order: t.order, preference: t.preference, q: t.q }).collect(),
    };
    match with_hooks(|h| h.on_enum(&ctx)) {
        None | Some(Ok(None)) => Outcome::Keep,
        Some(Ok(Some(EnumDecision::Route(routes)))) => {
            Outcome::Route(routes.into_iter().map(|c| Target { uri: c.uri, q: c.q, order: c.order, preference: c.preference }).collect())
        }
        Some(Ok(Some(EnumDecision::Reject { code, reason }))) => Outcome::Reject(code, reason),
        Some(Err(e)) => {
            kwarn!("{e}; routing {number} without it");
            Outcome::Keep
        }
    }
}

/// Put the hook's answer where the script reads it.
///
/// # Safety
/// `msg` is the message of the current call.
pub unsafe fn set_reject(msg: *mut sip_msg, code: u16, reason: &str) -> bool {
    let Some((c, r)) = PV_REJECT.get() else { return false };
    // SAFETY: per the caller.
    unsafe { c.set_int(msg, i64::from(code)) && r.set(msg, reason.as_bytes()) }
}
