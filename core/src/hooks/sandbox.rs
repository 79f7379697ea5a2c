//! The Lua state a hook script runs in: which standard libraries it gets, the
//! `ness` table, read-only contexts, and the instruction budget and memory cap
//! that keep a script from stalling or starving its host.
//!
//! By default a script gets `string`, `table`, `math`, `utf8` and `coroutine`,
//! the base functions without `dofile`/`loadfile`/`collectgarbage`, and a
//! `load` that only takes text (no bytecode). Pattern matching refuses
//! patterns whose worst case over the subject is too long to let run (the
//! matcher is C code, out of the instruction budget's reach). There is no `require` and no `package`, so no C module
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
        load = function(chunk, name, _mode, ...) return raw_load(chunk, name, "t", ...) end
        -- A script may not stop the collector (its state's memory is capped).
        collectgarbage = nil
        string.dump = nil
        -- Lua's pattern matcher is C: the instruction budget cannot stop it, and
        -- some patterns backtrack for minutes on a few hundred characters. Refuse
        -- a match whose worst case (length ^ repetitions) is past 10^7 steps.
        local function guarded(f, plain_at)
          return function(s, p, ...)
            if type(s) == "string" and type(p) == "string" and not (plain_at and select(plain_at - 2, ...)) then
              local reps, i = 0, 1
              while i <= #p do
                local c = p:byte(i)
                if c == 37 then i = i + 1                              -- %x: an escape
                elseif c == 42 or c == 43 or c == 45 then reps = reps + 1  -- * + -
                end
                i = i + 1
              end
              if reps > 0 and (#s + 1) ^ reps > 1e7 then
                error("pattern too costly for a hook: " .. reps .. " repetitions over " .. #s .. " characters", 2)
              end
            end
            return f(s, p, ...)
          end
        end
        string.find = guarded(string.find, 4)
        string.match = guarded(string.match)
        string.gmatch = guarded(string.gmatch)
        string.gsub = guarded(string.gsub)
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
    // The read-only wrapper for contexts (nested tables too): one shared
    // metatable, each proxy finding its table in a weak map; and the builder of
    // on_enum's context, made in one call (it runs on every call routed).
    let (readonly, enum_ctx) = lua
        .load(
            r#"
        local target = setmetatable({}, { __mode = "k" })
        local mt = {
          __index = function(p, k) return target[p][k] end,
          __newindex = function(_, k) error("the context is read-only (field " .. tostring(k) .. ")", 2) end,
          __pairs = function(p) return next, target[p], nil end,
          __len = function(p) return #target[p] end,
          __metatable = false,
        }
        local function ro(t)
          local proxy = setmetatable({}, mt)
          target[proxy] = t
          return proxy
        end
        local function readonly(t)
          for k, v in next, t do
            if type(v) == "table" then t[k] = readonly(v) end
          end
          return ro(t)
        end
        local function enum_ctx(number, caller, service, ...)
          local c, args = {}, { ... }
          for i = 1, #args, 4 do
            c[#c + 1] = ro({ uri = args[i], order = args[i + 1], preference = args[i + 2], q = args[i + 3] })
          end
          return ro({ number = number, caller = caller, service = service, candidates = ro(c) })
        end
        return readonly, enum_ctx
        "#,
        )
        .set_name("=sandbox")
        .eval::<(mlua::Function, mlua::Function)>()?;
    lua.set_named_registry_value("ness_readonly", readonly)?;
    lua.set_named_registry_value("ness_enum_ctx", enum_ctx)?;
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

/// on_enum's context, read-only, built in one call.
pub fn enum_ctx(lua: &Lua, ctx: &super::EnumCtx) -> mlua::Result<Value> {
    let f: mlua::Function = lua.named_registry_value("ness_enum_ctx")?;
    let mut args: Vec<Value> = Vec::with_capacity(3 + 4 * ctx.candidates.len());
    for text in [&ctx.number, &ctx.caller, &ctx.service] {
        args.push(Value::String(lua.create_string(text)?));
    }
    for c in &ctx.candidates {
        args.push(Value::String(lua.create_string(&c.uri)?));
        args.push(Value::Integer(c.order.into()));
        args.push(Value::Integer(c.preference.into()));
        args.push(Value::Integer(c.q.into()));
    }
    f.call(mlua::MultiValue::from_vec(args))
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
