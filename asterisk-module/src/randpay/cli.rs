//! CLI commands: `randpay show calls` (the calls metered now) and `randpay show
//! ledger [call-id]` (the ledger: the 50 most recent calls, or one with its totals).

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;
use std::ptr;
use std::time::Duration;

use ness_core::randpay::ledger::CallSummary;

use super::{CallRow, Role};
use crate::cli::{argv, entry, init, out};
use crate::ffi::{CLI_FAILURE, CLI_GENERATE, CLI_INIT, CLI_SHOWUSAGE, CLI_SUCCESS, Global, ast_cli_args, ast_cli_entry};
use crate::log::fence;
use crate::{Busy, engine};

const WAIT: Duration = Duration::from_secs(2);

fn calls_text() -> String {
    let Some(engine) = engine() else { return "res_privateness is not running\n".into() };
    let got = engine.randpay(WAIT, |m| async move { m.map(|m| (matches!(m.role, Role::Payee(_)), m.rows())) });
    let (payee, rows): (bool, Vec<CallRow>) = match got {
        None => return "the module thread did not answer in time\n".into(),
        Some(None) => return "RANDPAY is off (privateness.conf [randpay] role)\n".into(),
        Some(Some(x)) => x,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:<16} {:<24} {:>5} {:>8}  Channel",
        "Call-ID",
        "Number",
        if payee { "Tariff" } else { "Payee" },
        if payee { "Paid" } else { "Sent" },
        "Answered",
    );
    for r in &rows {
        let _ = writeln!(
            s,
            "{:<40} {:<16} {:<24} {:>5} {:>8}  {}",
            r.key,
            r.number,
            r.detail,
            r.paid,
            r.answered_secs.map_or("-".to_owned(), |a| format!("{a} s")),
            r.uniqueid
        );
    }
    let _ = writeln!(s, "{} metered call(s) ({})", rows.len(), if payee { "payee" } else { "payer" });
    s
}

fn ledger_text(call_id: Option<String>) -> String {
    let Some(engine) = engine() else { return "res_privateness is not running\n".into() };
    let got = engine.randpay(WAIT, move |m| async move {
        m.map(|m| match &m.role {
            Role::Payee(p) => p.ledger_calls(call_id.as_deref(), 50),
            Role::Payer(p) => p.payer().ledger_calls(call_id.as_deref(), 50),
        })
    });
    let calls: Vec<CallSummary> = match got {
        None => return "the module thread did not answer in time\n".into(),
        Some(None) => return "RANDPAY is off (privateness.conf [randpay] role)\n".into(),
        Some(Some(Err(e))) => return format!("{e}\n"),
        Some(Some(Ok(c))) => c,
    };
    let mut s = String::new();
    let _ = writeln!(s, "{:<40} {:<6} {:<16} {:>7} {:>4} {:>14} {:>14}  Ended", "Call-ID", "Role", "Number", "Tickets", "Won", "Expected EMC", "Won EMC");
    for c in &calls {
        let _ = writeln!(
            s,
            "{:<40} {:<6} {:<16} {:>7} {:>4} {:>14} {:>14}  {}",
            c.call_id,
            c.role,
            c.number,
            c.tickets,
            c.won,
            c.expected_value.to_string(),
            c.won_amount.to_string(),
            c.end_reason.as_deref().unwrap_or(if c.ended_ms.is_some() { "yes" } else { "in progress" })
        );
    }
    let _ = writeln!(s, "{} call(s)", calls.len());
    s
}

unsafe extern "C" fn cli_calls(e: *mut ast_cli_entry, cmd: c_int, a: *mut ast_cli_args) -> *mut c_char {
    let _busy = Busy::enter();
    fence("randpay show calls", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"randpay show calls", c"Usage: randpay show calls\n       The calls RANDPAY meters now: paid intervals (payee) or tickets sent (payer).\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                if a.argc != 3 {
                    return CLI_SHOWUSAGE;
                }
                out(a.fd, &calls_text());
                CLI_SUCCESS
            }
        }
    })
}

unsafe extern "C" fn cli_ledger(e: *mut ast_cli_entry, cmd: c_int, a: *mut ast_cli_args) -> *mut c_char {
    let _busy = Busy::enter();
    fence("randpay show ledger", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"randpay show ledger", c"Usage: randpay show ledger [call-id]\n       The RANDPAY ledger: the 50 most recent calls, or one call, with tickets, wins and totals.\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                let words = argv(a);
                if !(3..=4).contains(&words.len()) {
                    return CLI_SHOWUSAGE;
                }
                out(a.fd, &ledger_text(words.get(3).cloned()));
                CLI_SUCCESS
            }
        }
    })
}

pub static CALLS: Global<ast_cli_entry> = Global::new(entry(c"Show the calls RANDPAY meters", cli_calls));
pub static LEDGER: Global<ast_cli_entry> = Global::new(entry(c"Show the RANDPAY ledger", cli_ledger));
