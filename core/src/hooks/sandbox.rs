//! The Lua state a hook script runs in: which standard libraries it gets, the
//! `ness` table, read-only contexts, and the instruction budget and memory cap
//! that keep a script from stalling or starving its host.
//!
//! By default a script gets `string`, `table`, `math`, `utf8` and `coroutine`,
//! the base functions without `dofile`/`loadfile`, and a `load` that only takes
//! text (no bytecode). There is no `require` and no `package`, so no C module
//! can be loaded. `os` and `io` come only if the operator allows them
//! (`allow = ["os", "io"]`). `print` goes to the host's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::{HookHost, HookSettings};

/// Instructions between two checks of the budget.
pub const CHECK_EVERY: u32 = 1000;

/// The running count of the current call's instructions (reset before each call).
#[derive(Default)]
pub struct Budget {
    pub used: AtomicU64,
    pub limit: AtomicU64,
}

/// A message the budget check raises; recognised when the call fails.
pub const BUDGET_MESSAGE: &str = "the hook used up its instruction budget";

/// Build the sandboxed state with the `ness` table.
pub fn new_state(settings: &HookSettings, host: Arc<dyn HookHost>, budget: Arc<Budget>) -> mlua::Result<Lua> {
    let mut libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
    if settings.allow_os {
        libs |= StdLib::OS;
    }
    if settings.allow_io {
        libs |= StdLib::IO;
    }
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    let g = lua.globals();
    // No files through the base library, and no bytecode.
    g.set("dofile", Value::Nil)?;
    g.set("loadfile", Value::Nil)?;
    lua.load(
        r#"
        local raw_load = load
        load = function(chunk, name, _mode, env) return raw_load(chunk, name, "t", env) end
        "#,
    )
    .set_name("=sandbox")
    .exec()?;
    g.set("ness", ness_table(&lua, host)?)?;
    let log = lua.create_function(|_, args: mlua::Variadic<Value>| {
        let text: Vec<String> = args.iter().map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_owned())).collect();
        tracing::info!("lua: {}", text.join("\t"));
        Ok(())
    })?;
    g.set("print", log)?;
    // The read-only wrapper for contexts (nested tables too).
    lua.load(
        r#"
        local function readonly(t)
          local proxy = {}
          for k, v in pairs(t) do
            if type(v) == "table" then t[k] = readonly(v) end
          end
          return setmetatable(proxy, {
            __index = t,
            __newindex = function(_, k) error("the context is read-only (field " .. tostring(k) .. ")", 2) end,
            __pairs = function() return next, t, nil end,
            __len = function() return #t end,
            __metatable = false,
          })
        end
        return readonly
        "#,
    )
    .set_name("=sandbox")
    .eval::<mlua::Function>()
    .and_then(|f| lua.set_named_registry_value("ness_readonly", f))?;
    lua.set_memory_limit(settings.memory_limit)?;
    let b = budget.clone();
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(CHECK_EVERY), move |_, _| {
        let used = b.used.fetch_add(u64::from(CHECK_EVERY), Ordering::Relaxed) + u64::from(CHECK_EVERY);
        if used > b.limit.load(Ordering::Relaxed) {
            return Err(mlua::Error::runtime(BUDGET_MESSAGE));
        }
        Ok(VmState::Continue)
    })?;
    Ok(lua)
}

/// Wrap a context table read-only.
pub fn readonly(lua: &Lua, t: Table) -> mlua::Result<Table> {
    let f: mlua::Function = lua.named_registry_value("ness_readonly")?;
    f.call(t)
}

/// `ness.log`, `ness.now`, `ness.nvs_get`, `ness.enum`.
fn ness_table(lua: &Lua, host: Arc<dyn HookHost>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "log",
        lua.create_function(|_, (level, text): (String, String)| {
            match level.to_ascii_lowercase().as_str() {
                "error" | "err" => tracing::error!("lua: {text}"),
                "warn" | "warning" => tracing::warn!("lua: {text}"),
                "debug" | "dbg" => tracing::debug!("lua: {text}"),
                _ => tracing::info!("lua: {text}"),
            }
            Ok(())
        })?,
    )?;
    t.set(
        "now",
        lua.create_function(|_, ()| Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)))?,
    )?;
    let h = host.clone();
    // Failures are the script's to handle: nil and the reason, as io.open does.
    t.set(
        "nvs_get",
        lua.create_function(move |lua, name: String| match h.nvs_get(&name) {
            Ok(Some(v)) => Ok((Value::String(lua.create_string(&v)?), Value::Nil)),
            Ok(None) => Ok((Value::Nil, Value::Nil)),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(&e)?))),
        })?,
    )?;
    t.set(
        "enum",
        lua.create_function(move |lua, number: String| match host.enum_lookup(&number) {
            Ok(uris) => Ok((Value::Table(lua.create_sequence_from(uris)?), Value::Nil)),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(&e)?))),
        })?,
    )?;
    t.set("version", env!("CARGO_PKG_VERSION"))?;
    Ok(t)
}
