//! The example scripts in dialplan/lua/ run as they ship: each is loaded into
//! the hooks sandbox and its hook answers as its comments promise.

use std::path::PathBuf;
use std::sync::Arc;

use ness_core::hooks::*;

fn example(name: &str, allow: &str) -> Hooks {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dialplan/lua").join(name);
    let mut s = HookSettings::new(path);
    s.set_allow(allow).unwrap();
    Hooks::load(s, Arc::new(NoNode)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn enum_ctx(number: &str) -> EnumCtx {
    EnumCtx {
        number: number.into(),
        caller: "+4940111".into(),
        service: "E2U+sip".into(),
        candidates: vec![Candidate { uri: "sip:pbx@enum.example".into(), order: 10, preference: 10, q: 1000 }],
    }
}

#[test]
fn least_cost_routing_prefers_the_longest_prefix_and_keeps_enum_behind() {
    let h = example("least-cost-routing.lua", "");
    assert_eq!(h.defined(), ["on_enum"]);
    let Some(EnumDecision::Route(r)) = h.on_enum(&enum_ctx("+4930123456")).unwrap() else { panic!() };
    let uris: Vec<&str> = r.iter().map(|c| c.uri.as_str()).collect();
    assert_eq!(uris, ["sip:4930123456@berlin-gw.example.net", "sip:pbx@enum.example"]);
    let Some(EnumDecision::Route(r)) = h.on_enum(&enum_ctx("+4989123")).unwrap() else { panic!() };
    assert_eq!(r[0].uri, "sip:4989123@de-gw.example.net");
    assert_eq!(h.on_enum(&enum_ctx("+4990012345")).unwrap(), Some(EnumDecision::Reject { code: 403, reason: "Premium Rate Blocked".into() }));
    assert_eq!(h.on_enum(&enum_ctx("+15551234567")).unwrap(), None);
}

#[test]
fn the_time_of_day_tariff_needs_os_and_prices_by_the_clock() {
    let default = TariffDecision { price: "0.01".into(), risk: 2, interval_secs: 10, grace_secs: 3 };
    let ctx = |n: &str| CallCtx { number: n.into(), caller: String::new(), default: Some(default.clone()) };
    // Without `os` the script loads but the hook fails, so the host keeps its tariff.
    let h = example("time-of-day-tariff.lua", "");
    assert!(h.tariff(&ctx("+4930")).unwrap_err().to_string().contains("time-of-day-tariff.lua:"));
    let h = example("time-of-day-tariff.lua", "os");
    let landline = h.tariff(&ctx("+4930")).unwrap().unwrap();
    let mobile = h.tariff(&ctx("+4917012345")).unwrap().unwrap();
    assert!(["0.005", "0.01"].contains(&landline.price.as_str()), "{landline:?}");
    assert!(["0.015", "0.03"].contains(&mobile.price.as_str()), "{mobile:?}");
    assert_eq!((landline.risk, landline.interval_secs, landline.grace_secs), (2, 10, 3), "the rest as configured");
}

#[test]
fn the_spam_filter_drops_tags_and_reroutes() {
    let h = example("sms-spam-filter.lua", "");
    let sms = |from: &str, text: &str, phone: &str| SmsCtx { from: from.into(), text: text.into(), phone_id: phone.into(), renter: "alice".into(), received: String::new() };
    assert_eq!(h.on_sms(&sms("+4930", "You have WON a car", "sim1")).unwrap(), Some(SmsDecision::Drop { reason: "spam: you have won".into() }));
    assert_eq!(h.on_sms(&sms("+4915112345678", "hi", "sim1")).unwrap(), Some(SmsDecision::Drop { reason: "blocked sender +4915112345678".into() }));
    assert_eq!(h.on_sms(&sms("DKB", "Your code is 1234", "sim1")).unwrap(), Some(SmsDecision::Deliver { tags: vec!["bank".into(), "2fa".into()], renter: None }));
    assert_eq!(
        h.on_sms(&sms("+4930", "FOR BOB: call me", "sim-shared")).unwrap(),
        Some(SmsDecision::Deliver { tags: vec!["forwarded".into()], renter: Some("bob".into()) })
    );
    assert_eq!(h.on_sms(&sms("+4930", "see you at 8", "sim1")).unwrap(), Some(SmsDecision::Deliver { tags: vec![], renter: None }));
}

#[test]
fn the_trunk_choice_follows_the_country_code() {
    let h = example("per-country-trunk.lua", "");
    let ctx = |n: &str| TrunkCtx { number: n.into(), caller: String::new(), trunks: vec!["berlin".into(), "paris".into()] };
    assert_eq!(h.on_trunk(&ctx("+33123")).unwrap(), Some("paris".into()));
    assert_eq!(h.on_trunk(&ctx("+49301")).unwrap(), Some("berlin".into()));
    assert_eq!(h.on_trunk(&ctx("+44207")).unwrap(), Some("berlin".into()), "no london trunk: the first");
}
