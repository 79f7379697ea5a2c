//! hook-latency: how long one `on_enum` call takes, measured in-process with
//! the suite's own hook runner (ness_core::hooks) — the figure
//! bench/kamailio-module.sh prints next to Kamailio's calls/s with and without
//! the hook. usage: hook_latency <script.lua> [calls]
//! Prints one line: `calls N p50_us X p99_us Y max_us Z`.

use std::sync::Arc;
use std::time::Instant;

use ness_core::hooks::{Candidate, EnumCtx, HookSettings, Hooks, NoNode};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(script) = args.next() else {
        eprintln!("usage: hook_latency <script.lua> [calls]");
        std::process::exit(2);
    };
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let hooks = Hooks::load(HookSettings::new(script), Arc::new(NoNode)).unwrap_or_else(|e| {
        eprintln!("hook_latency: {e}");
        std::process::exit(1);
    });
    let ctx = EnumCtx {
        number: "+15550001234".into(),
        caller: "+4930111".into(),
        service: "E2U+sip".into(),
        candidates: vec![
            Candidate { uri: "sip:1234@192.0.2.10:5060".into(), order: 100, preference: 10, q: 1000 },
            Candidate { uri: "sip:1234@127.0.0.1:5090".into(), order: 100, preference: 20, q: 990 },
            Candidate { uri: "sip:1234@198.51.100.7".into(), order: 100, preference: 30, q: 980 },
        ],
    };
    let mut us = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t0 = Instant::now();
        let r = hooks.on_enum(&ctx);
        us.push(t0.elapsed().as_nanos() as f64 / 1000.0);
        if let Err(e) = r {
            eprintln!("hook_latency: {e}");
            std::process::exit(1);
        }
    }
    us.sort_by(f64::total_cmp);
    let at = |p: f64| us[((us.len() as f64 * p) as usize).min(us.len() - 1)];
    println!("calls {calls} p50_us {:.1} p99_us {:.1} max_us {:.1}", at(0.5), at(0.99), us[us.len() - 1]);
}
