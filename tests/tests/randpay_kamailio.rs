//! RANDPAY between two real Kamailios (Debian's 5.6) on loopback, each with
//! privateness.so and the shipped dialplan/kamailio/randpay-{payer,payee}.cfg,
//! paying with the devnet's "payer" wallet to its "payee" wallet; SIPp is the
//! renter's phone (caller) and the provider's PBX (callee).
//!
//! What is checked (docs/randpay.md): tickets flow every interval and both
//! ledgers show them; the INFOs carrying challenges never reach the phones; a
//! payer that stops paying is cut on both legs with BYE once interval + grace
//! pass; forged and replayed tickets get 402 (or 481 for a reused Call-ID) and
//! change no ledger row; a payee restart mid-call keeps every ledger row and
//! closes the interrupted call as `restart`.
//!
//! The second test runs the same calls the side-channel way: the payer has
//! `randpay_payee_url`, pays the first interval before the INVITE leaves (the
//! ticket rides in it: no 402) and polls the payee's HTTP side channel for the
//! next challenges.
//!
//! Tariff: 0.01 EMC/min, risk 2, interval 10 s, grace 3 s — short intervals so
//! a call sees several in half a minute.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ness_tests::{Proc, require_tool, run};

const USER: &str = "rp";
const PASSWORD: &str = "rp-password";
const TARIFF: &str = "+ 0.01 risk=2 interval=10 grace=3";
const INTERVAL: f64 = 10.0;
const GRACE: f64 = 3.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

type Pbx = ness_tests::KamailioPbx;

fn devnet() -> (Proc, String) {
    ness_tests::randpay_devnet(USER, PASSWORD)
}

/// The tickets table of a ledger, for one call: (seq, outcome).
fn ticket_rows(ledger: &Path, call_id: &str) -> Vec<(u32, Option<String>, Option<String>)> {
    let db = rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut st = db.prepare("SELECT seq, outcome, ticket FROM tickets WHERE call_id = ?1 ORDER BY seq").unwrap();
    st.query_map([call_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// A SIPp caller through the payer, with a fixed Call-ID.
fn caller(scenario: &str, payer: u16, call_id: &str, trace: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "-sf".to_owned(), repo().join("tests/sipp").join(scenario).display().to_string(),
        format!("127.0.0.1:{payer}"), "-s".into(), "+4930123456".into(), "-m".into(), "1".into(),
        "-i".into(), "127.0.0.1".into(), "-p".into(), free_udp_port().to_string(),
        "-cid_str".into(), call_id.to_owned(), "-timeout".into(), "60".into(), "-timeout_error".into(), "-nostdin".into(),
        "-trace_msg".into(), "-message_file".into(), trace.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(require_tool("sipp", "sip-tester"), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// One INVITE straight to the payee carrying `ticket`; the status code it got.
fn invite_with_ticket(payee: u16, call_id: &str, ticket: &str, dir: &Path) -> String {
    let trace = dir.join(format!("{call_id}.trace"));
    let out = run(&require_tool("sipp", "sip-tester"), &[
        "-sf", repo().join("tests/sipp/uac_ticket.xml").to_str().unwrap(),
        &format!("127.0.0.1:{payee}"), "-s", "+4930123456", "-m", "1", "-i", "127.0.0.1", "-p", &free_udp_port().to_string(),
        "-cid_str", call_id, "-key", "ticket", ticket, "-timeout", "15", "-nostdin",
        "-trace_msg", "-message_file", trace.to_str().unwrap(),
    ], &[], Duration::from_secs(30));
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = out;
    text.lines().find_map(|l| l.trim().strip_prefix("SIP/2.0 ").filter(|s| !s.starts_with("100")).map(str::to_owned)).unwrap_or_default()
}

#[test]
fn tickets_flow_every_interval_and_unpaid_calls_are_cut_on_both_legs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut devnet, url) = devnet();
    let (callee_port, payee_port, payer_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let callee_trace = dir.path().join("callee.trace");
    let mut callee = Proc::start(require_tool("sipp", "sip-tester"), &[
        "-sf", repo().join("tests/sipp/uas_answer.xml").to_str().unwrap(), "-i", "127.0.0.1", "-p", &callee_port.to_string(),
        "-nostdin", "-trace_msg", "-message_file", callee_trace.to_str().unwrap(),
    ], &[]);
    let target = format!("TARGET=\"sip:127.0.0.1:{callee_port}\"");
    let payee_defines = [target, format!("TARIFF=\"{TARIFF}\"")];
    let mut payee = Pbx::start("randpay-payee.cfg", "payee", payee_port, (&url, USER, PASSWORD), dir.path(), &payee_defines);
    let mut payer = Pbx::start("randpay-payer.cfg", "payer", payer_port, (&url, USER, PASSWORD), dir.path(), &[format!("PAYEE=\"sip:127.0.0.1:{payee_port}\"")]);

    // Two calls at once: one paid throughout and hung up by the caller after 24 s,
    // one whose payer stops paying after its second interval.
    let (held, cut) = ("rp-held@127.0.0.1", "rp-cut@127.0.0.1");
    let held_trace = dir.path().join("held.trace");
    let cut_trace = dir.path().join("cut.trace");
    let started = Instant::now();
    let mut held_call = caller("uac_hold.xml", payer_port, held, &held_trace, &["-d", "24000"]);
    let mut cut_call = caller("uac_until_bye.xml", payer_port, cut, &cut_trace, &[]);

    // Interval 1 is challenged at 7.5 s and paid at once; interval 2 at 17.5 s.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let paid = payee.paid_intervals();
    assert_eq!(paid.get(held), Some(&2), "12 s into the call: {paid:?}\n{}", payee.log());
    assert_eq!(paid.get(cut), Some(&2), "12 s into the call: {paid:?}");
    assert!(payer.kamcmd(&["randpay.stop", cut]).contains(cut), "randpay.stop");
    let stopped_at = started.elapsed().as_secs_f64();

    let status = held_call.wait_exit(Duration::from_secs(40)).expect("the paid call did not end");
    assert!(status.success(), "the paid call was cut or failed: {}", std::fs::read_to_string(&held_trace).unwrap_or_default());
    let status = cut_call.wait_exit(Duration::from_secs(40)).expect("the unpaid call was never cut");
    let cut_after = started.elapsed().as_secs_f64();
    assert!(status.success(), "the unpaid call did not end with a BYE: {}", std::fs::read_to_string(&cut_trace).unwrap_or_default());
    // Interval 2 (paid until 20 s) is due; the cut comes at 20 + grace, on the
    // schedule's 1 s tick: within interval + grace of the payer stopping.
    assert!(cut_after >= 2.0 * INTERVAL + GRACE - 0.5, "cut too early, at {cut_after:.1} s");
    assert!(cut_after - stopped_at <= INTERVAL + GRACE + 1.5, "cut {:.1} s after the payer stopped", cut_after - stopped_at);

    // Both legs got the BYE, with the reason; no INFO ever reached a phone.
    // The two BYEs leave together, but the caller's exit may come first: give
    // the callee's trace a moment to show its BYE.
    let with_reason = |path: &std::path::Path| {
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(path).unwrap();
            if text.contains("RANDPAY interval 2 unpaid") || t0.elapsed() > Duration::from_secs(3) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let caller_side = with_reason(&cut_trace);
    let callee_side = with_reason(&callee_trace);
    for (leg, text) in [("caller", &caller_side), ("callee", &callee_side)] {
        assert!(text.contains("RANDPAY interval 2 unpaid"), "the {leg} leg got no BYE with the reason:\n{text}");
    }
    for text in [&caller_side, &callee_side, &std::fs::read_to_string(&held_trace).unwrap()] {
        assert!(!text.contains("INFO sip:"), "a challenge INFO reached a phone:\n{text}");
    }

    // The ledgers: three paid intervals and a BYE; two and a cut.
    std::thread::sleep(Duration::from_millis(500));
    let l = payee.ledger(held);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("3", "bye"), "{l:?}");
    assert_eq!(payer.ledger(held)["tickets"], "3");
    let l = payee.ledger(cut);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("2", "unpaid"), "{l:?}");
    let rows = ticket_rows(&payee.dir.join("ledger.db"), held);
    assert_eq!(rows.iter().map(|r| (r.0, r.1.as_deref())).collect::<Vec<_>>(), [(0, Some("paid")), (1, Some("paid")), (2, Some("paid"))]);

    // Forged and replayed tickets, straight at the payee.
    let forged = "seq=0;ticket=\"ecec0000000000000000000000000000\"";
    assert_eq!(invite_with_ticket(payee_port, "rp-forged@127.0.0.1", forged, dir.path()), "402 Payment Required");
    let payer_rows = ticket_rows(&payer.dir.join("ledger.db"), held);
    let real = format!("seq=0;ticket=\"{}\"", payer_rows[0].2.as_deref().expect("the payer's first ticket"));
    assert_eq!(invite_with_ticket(payee_port, "rp-replay@127.0.0.1", &real, dir.path()), "402 Payment Required");
    assert_eq!(invite_with_ticket(payee_port, held, &real, dir.path()), "481 Call Already Ended");
    assert_eq!(ticket_rows(&payee.dir.join("ledger.db"), held), rows, "a replay changed the ledger");
    assert_eq!(payee.ledger("rp-forged@127.0.0.1")["tickets"], "0");

    // A payee restart mid-call: every row written before stays; the call ends as 'restart'.
    let restarted = "rp-restart@127.0.0.1";
    let mut call = caller("uac_until_bye.xml", payer_port, restarted, &dir.path().join("restart.trace"), &[]);
    std::thread::sleep(Duration::from_secs(9));
    let before = ticket_rows(&payee.dir.join("ledger.db"), restarted);
    assert_eq!(before.iter().filter(|r| r.1.as_deref() == Some("paid")).count(), 2, "{before:?}");
    payee.proc.kill();
    let mut payee = Pbx::start("randpay-payee.cfg", "payee", payee_port, (&url, USER, PASSWORD), dir.path(), &payee_defines);
    assert_eq!(ticket_rows(&payee.dir.join("ledger.db"), restarted), before);
    assert_eq!(ticket_rows(&payee.dir.join("ledger.db"), held), rows);
    assert_eq!(payee.ledger(restarted)["end_reason"], "restart");
    call.kill();

    let logs = payee.log() + &payer.log();
    assert!(!logs.contains("panic"), "a panic was logged:\n{logs}");
    callee.kill();
    devnet.kill();
}

#[test]
fn a_side_channel_payer_pays_before_the_invite_and_polls_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut devnet, url) = devnet();
    let (callee_port, payee_port, payer_port, side_port) = (free_udp_port(), free_udp_port(), free_udp_port(), free_tcp_port());
    let callee_trace = dir.path().join("callee.trace");
    let mut callee = Proc::start(require_tool("sipp", "sip-tester"), &[
        "-sf", repo().join("tests/sipp/uas_answer.xml").to_str().unwrap(), "-i", "127.0.0.1", "-p", &callee_port.to_string(),
        "-nostdin", "-trace_msg", "-message_file", callee_trace.to_str().unwrap(),
    ], &[]);
    let payee_defines = [
        format!("TARGET=\"sip:127.0.0.1:{callee_port}\""),
        format!("TARIFF=\"{TARIFF}\""),
        format!("SIDE_CHANNEL=\"127.0.0.1:{side_port}\""),
        "SIDE_PEERS=\"127.0.0.1\"".to_owned(),
    ];
    let mut payee = Pbx::start("randpay-payee.cfg", "payee", payee_port, (&url, USER, PASSWORD), dir.path(), &payee_defines);
    let mut payer = Pbx::start("randpay-payer.cfg", "payer", payer_port, (&url, USER, PASSWORD), dir.path(), &[
        format!("PAYEE=\"sip:127.0.0.1:{payee_port}\""),
        format!("PAYEE_URL=\"http://127.0.0.1:{side_port}\""),
    ]);

    let (held, cut) = ("side-held@127.0.0.1", "side-cut@127.0.0.1");
    let (held_trace, cut_trace) = (dir.path().join("held.trace"), dir.path().join("cut.trace"));
    let started = Instant::now();
    // Held 45 s: past the dialog module's first backstop (interval + grace + 30 s
    // after the answer), which the metering must move as tickets come in.
    let mut held_call = caller("uac_hold.xml", payer_port, held, &held_trace, &["-d", "45000"]);
    let mut cut_call = caller("uac_until_bye.xml", payer_port, cut, &cut_trace, &[]);

    // Both intervals paid 12 s in, on both sides; the payer lists them as side-channel calls.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let paid = payee.paid_intervals();
    assert_eq!((paid.get(held), paid.get(cut)), (Some(&2), Some(&2)), "12 s into the calls: {paid:?}\n{}", payee.log());
    let sent = payer.paid_intervals();
    assert_eq!((sent.get(held), sent.get(cut)), (Some(&2), Some(&2)), "the payer's side-channel calls: {sent:?}");
    assert!(payer.kamcmd(&["randpay.stop", cut]).contains(cut), "randpay.stop");
    let stopped_at = started.elapsed().as_secs_f64();

    let status = cut_call.wait_exit(Duration::from_secs(40)).expect("the unpaid call was never cut");
    let cut_after = started.elapsed().as_secs_f64();
    assert!(status.success(), "the unpaid call did not end with a BYE: {}", std::fs::read_to_string(&cut_trace).unwrap_or_default());
    assert!(cut_after >= 2.0 * INTERVAL + GRACE - 0.5, "cut too early, at {cut_after:.1} s");
    assert!(cut_after - stopped_at <= INTERVAL + GRACE + 1.5, "cut {:.1} s after the payer stopped", cut_after - stopped_at);
    let status = held_call.wait_exit(Duration::from_secs(60)).expect("the paid call did not end");
    assert!(status.success(), "the paid call was cut or failed: {}", std::fs::read_to_string(&held_trace).unwrap_or_default());
    let callee_side = std::fs::read_to_string(&callee_trace).unwrap();
    assert!(callee_side.contains("RANDPAY interval 2 unpaid"), "the callee leg got no BYE with the reason:\n{callee_side}");

    // The INVITEs carried the ticket: the payee never answered 402, never sent an INFO.
    let logs = payee.log() + &payer.log();
    for text in [&std::fs::read_to_string(&held_trace).unwrap(), &std::fs::read_to_string(&cut_trace).unwrap(), &callee_side] {
        assert!(!text.contains("INFO sip:") && !text.contains("Randpay-Challenge"), "a challenge reached a phone:\n{text}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let l = payee.ledger(held);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("5", "bye"), "{l:?}");
    assert_eq!(payer.ledger(held)["tickets"], "5");
    let l = payee.ledger(cut);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("2", "unpaid"), "{l:?}");
    assert_eq!(payer.ledger(cut)["end_reason"], "stopped");
    assert!(payer.paid_intervals().is_empty(), "the payer still pays: {:?}", payer.paid_intervals());
    assert!(!logs.contains("panic"), "a panic was logged:\n{logs}");
    callee.kill();
    devnet.kill();
}

/// The Lua `tariff(ctx)` hook prices calls in the payee's RANDPAY process
/// (docs/hooks.md): it sees the caller and the configured line, and its answer
/// is what the 402 asks. `privateness.reload_hooks` in the middle of a paid
/// call: the call keeps the tariff it was priced by and goes on being paid
/// until its caller hangs up; the next call is priced by the new script.
#[test]
fn the_tariff_hook_prices_calls_and_a_reload_keeps_the_call_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (mut devnet, url) = devnet();
    let (callee_port, payee_port, payer_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let mut callee = Proc::start(require_tool("sipp", "sip-tester"), &[
        "-sf", repo().join("tests/sipp/uas_answer.xml").to_str().unwrap(), "-i", "127.0.0.1", "-p", &callee_port.to_string(), "-nostdin",
    ], &[]);
    let script = dir.path().join("tariff.lua");
    let write_script = |price: &str| {
        std::fs::write(&script, format!(
            "-- tester's calls at {price}, with three times the configured risk\n\
             function tariff(ctx)\n\
             \x20 if ctx.caller ~= 'tester' then return nil end\n\
             \x20 ness.log('info', 'pricing ' .. ctx.number .. ' for ' .. ctx.caller .. ' at {price}')\n\
             \x20 return {{ price = '{price}', risk = ctx.default.risk * 3 }}\n\
             end\n"
        ))
        .unwrap()
    };
    write_script("0.004");
    let payee_defines = [format!("TARGET=\"sip:127.0.0.1:{callee_port}\""), format!("TARIFF=\"{TARIFF}\""), format!("HOOKS_SCRIPT=\"{}\"", script.display())];
    let mut payee = Pbx::start("randpay-payee.cfg", "payee", payee_port, (&url, USER, PASSWORD), dir.path(), &payee_defines);
    let mut payer = Pbx::start("randpay-payer.cfg", "payer", payer_port, (&url, USER, PASSWORD), dir.path(), &[format!("PAYEE=\"sip:127.0.0.1:{payee_port}\"")]);
    let ledger = payee.dir.join("ledger.db");

    let (first, second) = ("hook-first@127.0.0.1", "hook-second@127.0.0.1");
    let first_trace = dir.path().join("first.trace");
    let started = Instant::now();
    let mut first_call = caller("uac_hold.xml", payer_port, first, &first_trace, &["-d", "22000"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ness_tests::ledger_price(&ledger, first), (4_000, 6), "the hook's price and risk (the line's risk 2, times 3)\n{}", payee.log());

    // A new script, reloaded while the first call is paid for.
    write_script("0.007");
    let reply = payee.kamcmd(&["privateness.reload_hooks"]);
    assert!(reply.contains("compiles"), "{reply}");
    let mut second_call = caller("uac_hold.xml", payer_port, second, &dir.path().join("second.trace"), &["-d", "2000"]);
    assert!(second_call.wait_exit(Duration::from_secs(30)).expect("the second call did not end").success());
    assert_eq!(ness_tests::ledger_price(&ledger, second), (7_000, 6), "the reloaded script prices the next call");

    let status = first_call.wait_exit(Duration::from_secs(40)).expect("the first call did not end");
    assert!(status.success(), "the call in progress was cut by the reload: {}", std::fs::read_to_string(&first_trace).unwrap_or_default());
    assert!(started.elapsed() >= Duration::from_secs(22), "the first call ended early");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ness_tests::ledger_price(&ledger, first), (4_000, 6), "the call in progress kept its tariff");
    let l = payee.ledger(first);
    assert_eq!((l["tickets"].as_str(), l["end_reason"].as_str()), ("3", "bye"), "paid through the reload: {l:?}");
    let logs = payee.log() + &payer.log();
    assert!(logs.contains("lua: pricing +4930123456 for tester at 0.004"), "the hook's log line (from the RANDPAY process's helper thread):\n{logs}");
    assert!(!logs.contains("panic"), "a panic was logged:\n{logs}");
    callee.kill();
    devnet.kill();
}
