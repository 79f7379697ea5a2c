//! The hook API against real Lua: each hook's answers, the sandbox, the limits, reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

struct FakeNode;

impl HookHost for FakeNode {
    fn nvs_get(&self, name: &str) -> Result<Option<String>, String> {
        match name {
            "dns:lcr.emc" => Ok(Some("+49=sip:cheap.example".into())),
            "down" => Err("the node did not answer within 500 ms".into()),
            _ => Ok(None),
        }
    }
    fn enum_lookup(&self, number: &str) -> Result<Vec<String>, String> {
        Ok(vec![format!("sip:{}@enum.example", number.trim_start_matches('+'))])
    }
}

fn script(dir: &Path, text: &str) -> HookSettings {
    let p = dir.join("hooks.lua");
    std::fs::write(&p, text).unwrap();
    HookSettings { instructions: 200_000, memory_limit: 4 << 20, ..HookSettings::new(p) }
}

fn hooks(text: &str) -> (tempfile::TempDir, Hooks) {
    let dir = tempfile::tempdir().unwrap();
    let h = Hooks::load(script(dir.path(), text), Arc::new(FakeNode)).unwrap();
    (dir, h)
}

fn ctx() -> EnumCtx {
    EnumCtx {
        number: "+4930123456".into(),
        caller: "+4940111".into(),
        service: "E2U+sip".into(),
        candidates: vec![
            Candidate { uri: "sip:a@one.example".into(), order: 10, preference: 10, q: 1000 },
            Candidate { uri: "sip:b@two.example".into(), order: 10, preference: 20, q: 990 },
        ],
    }
}

#[test]
fn on_enum_reorders_drops_adds_and_rejects() {
    let (_d, h) = hooks(
        r#"
        function on_enum(ctx)
          if ctx.caller == "+4940666" then return { reject = 403, reason = "Caller Blocked" } end
          if ctx.number:sub(1, 3) == "+44" then return nil end
          local out = { "sip:gw@cheap.example" }
          for i = #ctx.candidates, 1, -1 do out[#out + 1] = ctx.candidates[i].uri end
          return out
        end
        "#,
    );
    let Some(EnumDecision::Route(r)) = h.on_enum(&ctx()).unwrap() else { panic!() };
    let uris: Vec<&str> = r.iter().map(|c| c.uri.as_str()).collect();
    assert_eq!(uris, ["sip:gw@cheap.example", "sip:b@two.example", "sip:a@one.example"]);
    assert_eq!(r.iter().map(|c| c.q).collect::<Vec<_>>(), [1000, 990, 980], "list order is try order");
    assert_eq!((r[1].order, r[1].preference), (10, 20), "a known route keeps its NAPTR fields");
    let blocked = EnumCtx { caller: "+4940666".into(), ..ctx() };
    assert_eq!(h.on_enum(&blocked).unwrap(), Some(EnumDecision::Reject { code: 403, reason: "Caller Blocked".into() }));
    assert_eq!(h.on_enum(&EnumCtx { number: "+441234".into(), ..ctx() }).unwrap(), None);
    assert_eq!(h.defined(), ["on_enum"]);
}

#[test]
fn bad_answers_are_refused_with_the_reason() {
    for (body, want) in [
        ("return 42", "a integer"),
        ("return { reject = 200 }", "not a SIP status"),
        ("return { 'http://x' }", "not a sip:, sips: or tel: URI"),
        ("return { {order = 1} }", "has no uri"),
        ("return { reject = 486, reason = 'two\\nlines' }", "one line"),
    ] {
        let (_d, h) = hooks(&format!("function on_enum(ctx) {body} end"));
        let e = h.on_enum(&ctx()).unwrap_err();
        assert!(matches!(e, HookError::BadResult { .. }) && e.to_string().contains(want), "{body}: {e}");
    }
}

#[test]
fn an_endless_loop_is_stopped_by_the_budget_and_the_next_call_runs() {
    let (_d, h) = hooks("n = 0\nfunction on_enum(ctx)\n  n = n + 1\n  if n == 1 then while true do end end\n  return nil\nend");
    let t0 = Instant::now();
    let e = h.on_enum(&ctx()).unwrap_err();
    assert!(matches!(e, HookError::Budget { hook: "on_enum", limit: 200_000 }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "stopping took {:?}", t0.elapsed());
    assert_eq!(h.on_enum(&ctx()).unwrap(), None, "the budget is per call");
    assert_eq!(h.stats.stopped.load(Ordering::Relaxed), 1);
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_cap_and_memory_comes_back() {
    let (_d, h) = hooks("function on_sms(m)\n  local t = {}\n  for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end\nend");
    let h = Hooks { settings: HookSettings { instructions: 1_000_000_000, ..h.settings.clone() }, ..h };
    let e = h.on_sms(&SmsCtx::default()).unwrap_err();
    assert!(matches!(e, HookError::Memory { hook: "on_sms", .. }), "{e}");
    assert!(h.lua.used_memory() < 1 << 20, "{} bytes still held", h.lua.used_memory());
}

#[test]
fn script_errors_name_the_line() {
    let (_d, h) = hooks("function tariff(ctx)\n  local x = nil\n  return x.price\nend");
    let e = h.tariff(&CallCtx::default()).unwrap_err();
    assert!(e.to_string().contains("hooks.lua:3:"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let Err(e) = Hooks::load(script(dir.path(), "function on_enum(ctx)\n  return {\nend"), Arc::new(NoNode)) else { panic!() };
    assert!(matches!(e, HookError::Compile(_)) && e.to_string().contains("hooks.lua:3:"), "{e}");
}

#[test]
fn the_sandbox_has_no_os_io_require_files_or_bytecode_unless_allowed() {
    let (_d, h) = hooks(
        r#"
        function on_trunk(ctx)
          local probe = ctx.number
          if probe == "os" then return tostring(os.execute("true")) end
          if probe == "io" then return io.open("/etc/passwd"):read("l") end
          if probe == "require" then return require("socket") end
          if probe == "dofile" then return dofile("/etc/passwd") end
          if probe == "bytecode" then return load(string.dump(function() return "x" end))() end
          if probe == "text" then return load("return 'berlin'")() end
          if probe == "write" then ctx.number = "+1" end
          return nil
        end
        "#,
    );
    let call = |n: &str| h.on_trunk(&TrunkCtx { number: n.into(), trunks: vec!["berlin".into()], ..TrunkCtx::default() });
    for probe in ["os", "io", "require", "dofile", "bytecode"] {
        let e = call(probe).unwrap_err();
        assert!(matches!(e, HookError::Runtime { .. }), "{probe}: {e}");
    }
    assert_eq!(call("text").unwrap(), Some("berlin".into()), "text chunks still load");
    assert!(call("write").unwrap_err().to_string().contains("read-only"));

    let dir = tempfile::tempdir().unwrap();
    let mut s = script(dir.path(), "function on_trunk(ctx) if os.time() > 0 then return 'berlin' end end");
    s.set_allow("os").unwrap();
    let h = Hooks::load(s, Arc::new(NoNode)).unwrap();
    assert_eq!(h.on_trunk(&TrunkCtx { trunks: vec!["berlin".into()], ..TrunkCtx::default() }).unwrap(), Some("berlin".into()));
    assert!(HookSettings::new("x").set_allow("os,ffi").is_err());
}

#[test]
fn the_ness_table_reaches_the_host() {
    let (_d, h) = hooks(
        r#"
        function on_enum(ctx)
          local lcr, err = ness.nvs_get("dns:lcr.emc")
          local _, down = ness.nvs_get("down")
          local routes = ness.enum("+4930999")
          ness.log("info", "lcr " .. lcr .. " at " .. math.floor(ness.now()))
          return { routes[1], "sip:" .. down:gsub("[^%w]", "") .. "@x" }
        end
        "#,
    );
    let Some(EnumDecision::Route(r)) = h.on_enum(&ctx()).unwrap() else { panic!() };
    assert_eq!(r[0].uri, "sip:4930999@enum.example");
    assert!(r[1].uri.starts_with("sip:thenodedidnotanswer"), "{}", r[1].uri);
}

#[test]
fn tariff_sms_and_trunk_answers() {
    let (_d, h) = hooks(
        r#"
        function tariff(ctx)
          if ctx.number:sub(1, 3) == "+49" then return { price = "0.02", interval = 30 } end
        end
        function on_sms(m)
          if m.text:find("WIN A PRIZE") then return { drop = true, reason = "spam" } end
          if m.phone_id == "sim2" then return { tags = { "sim2", "night" }, renter = "bob" } end
        end
        function on_trunk(ctx) return ctx.trunks[2] or "nowhere" end
        "#,
    );
    let default = TariffDecision { price: "0.01".into(), risk: 2, interval_secs: 10, grace_secs: 3 };
    let t = h.tariff(&CallCtx { number: "+4930".into(), default: Some(default.clone()), ..CallCtx::default() }).unwrap().unwrap();
    assert_eq!(t, TariffDecision { price: "0.02".into(), risk: 2, interval_secs: 30, grace_secs: 3 });
    assert_eq!(t.line("+49"), "+49 0.02 risk=2 interval=30 grace=3");
    assert_eq!(h.tariff(&CallCtx { number: "+1".into(), default: Some(default), ..CallCtx::default() }).unwrap(), None);
    let spam = SmsCtx { text: "WIN A PRIZE now".into(), ..SmsCtx::default() };
    assert_eq!(h.on_sms(&spam).unwrap(), Some(SmsDecision::Drop { reason: "spam".into() }));
    let tagged = SmsCtx { phone_id: "sim2".into(), ..SmsCtx::default() };
    assert_eq!(h.on_sms(&tagged).unwrap(), Some(SmsDecision::Deliver { tags: vec!["sim2".into(), "night".into()], renter: Some("bob".into()) }));
    assert_eq!(h.on_sms(&SmsCtx::default()).unwrap(), Some(SmsDecision::Deliver { tags: vec![], renter: None }));
    let trunks = TrunkCtx { trunks: vec!["berlin".into(), "paris".into()], ..TrunkCtx::default() };
    assert_eq!(h.on_trunk(&trunks).unwrap(), Some("paris".into()));
    assert!(h.on_trunk(&TrunkCtx { trunks: vec!["berlin".into()], ..TrunkCtx::default() }).is_err(), "a name that is not a trunk is refused");
}

#[test]
fn reload_swaps_the_script_and_a_broken_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "function on_trunk(ctx) return 'berlin' end");
    let mut h = Hooks::load(s.clone(), Arc::new(NoNode)).unwrap();
    let t = TrunkCtx { trunks: vec!["berlin".into(), "paris".into()], ..TrunkCtx::default() };
    assert_eq!(h.on_trunk(&t).unwrap(), Some("berlin".into()));
    std::fs::write(&s.script, "function on_trunk(ctx) return 'paris' end").unwrap();
    h.reload().unwrap();
    assert_eq!(h.on_trunk(&t).unwrap(), Some("paris".into()));
    std::fs::write(&s.script, "function on_trunk(ctx) return 'paris' en").unwrap();
    assert!(matches!(h.reload(), Err(HookError::Compile(_))));
    assert_eq!(h.on_trunk(&t).unwrap(), Some("paris".into()), "the running script stays");
    std::fs::write(&s.script, "while true do end").unwrap();
    assert!(h.reload().is_err(), "a top level that never ends does not load");
    assert_eq!(h.stats.reloads.load(Ordering::Relaxed), 1);
}

#[test]
fn a_pathological_pattern_is_refused_before_it_can_stall_the_host() {
    let (_d, h) = hooks(
        r#"
        function on_trunk(ctx)
          if ctx.number == "evil" then return string.rep("a", 2000):find(".-.-.-.-b") and "x" end
          if ctx.number == "plain" then return (string.rep("a", 2000) .. ".-b"):find(".-b", 1, true) and "berlin" end
          if ctx.number == "normal" then return ("sip:+4930123@gw.example"):match("^sip:%+(%d+)@") and "berlin" end
          if ctx.number == "gc" then collectgarbage("stop") end
        end
        "#,
    );
    let call = |n: &str| h.on_trunk(&TrunkCtx { number: n.into(), trunks: vec!["berlin".into()], ..TrunkCtx::default() });
    let t0 = Instant::now();
    let e = call("evil").unwrap_err();
    assert!(e.to_string().contains("pattern too costly"), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());
    assert_eq!(call("plain").unwrap(), Some("berlin".into()), "plain find is not a pattern");
    assert_eq!(call("normal").unwrap(), Some("berlin".into()));
    assert!(call("gc").is_err(), "collectgarbage is not there");
}

#[test]
fn settings_from_a_hosts_keys() {
    let s = HookSettings::from_parts("hooks.lua", Some(5000), Some(1024), "os").unwrap();
    assert_eq!((s.instructions, s.memory_limit, s.allow_os, s.allow_io), (5000, 1 << 20, true, false));
    let d = HookSettings::from_parts("hooks.lua", None, None, "").unwrap();
    assert_eq!((d.instructions, d.memory_limit), (HookSettings::DEFAULT_INSTRUCTIONS, HookSettings::DEFAULT_MEMORY));
    assert!(HookSettings::from_parts("hooks.lua", Some(10), None, "").unwrap_err().to_string().contains("instructions 10"));
    assert!(HookSettings::from_parts("hooks.lua", None, Some(1), "").unwrap_err().to_string().contains("memory"));
    assert!(HookSettings::from_parts("hooks.lua", None, None, "ffi").unwrap_err().to_string().contains("ffi"));
}
