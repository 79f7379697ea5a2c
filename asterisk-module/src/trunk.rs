//! Skywire trunks hosted inside Asterisk (docs/skywire-trunk.md). With
//! `trunk_config = /etc/ness/trunk.toml` in privateness.conf's `[general]`, the
//! module reads the same `[[trunk]]` tables as the `ness-trunk` daemon (checked
//! on Asterisk's thread at load and reload: files only, no tokio), and the
//! module thread starts the relays on its runtime (engine.rs), keeps them for
//! as long as the module is loaded, and stops and drops them there at unload.
//! A reload restarts the trunks only if the file's text changed. `privateness
//! show trunks` reads their counters (atomics only) on the CLI thread.

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::ptr;

use ness_core::trunk::config::{self, Trunk};
use ness_core::trunk::{RunningTrunk, TrunkStatus};

use crate::cli::{entry, init, out};
use crate::ffi::{CLI_FAILURE, CLI_GENERATE, CLI_INIT, CLI_SHOWUSAGE, CLI_SUCCESS, Global, ast_cli_args, ast_cli_entry};
use crate::log::fence;
use crate::{Busy, engine};

/// A trunk file as read at load or reload.
pub struct TrunkFile {
    pub path: PathBuf,
    pub text: String,
    pub trunks: Vec<Trunk>,
}

/// Read and check `path` (on Asterisk's thread: files only).
pub fn read(path: &Path) -> Result<TrunkFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("trunk_config: cannot read {}: {e}", path.display()))?;
    let trunks = config::parse(&text, path).map_err(|e| format!("trunk_config: {e}"))?;
    if trunks.is_empty() {
        return Err(format!("trunk_config: {} has no [[trunk]]", path.display()));
    }
    Ok(TrunkFile { path: path.to_owned(), text, trunks })
}

/// The trunks the module thread runs (owned and dropped only there).
pub struct TrunkSet {
    pub path: PathBuf,
    pub text: String,
    pub running: Vec<RunningTrunk>,
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl TrunkSet {
    pub fn is_from(&self, f: &TrunkFile) -> bool {
        self.path == f.path && self.text == f.text
    }
}

fn show_text(trunks: Option<Vec<TrunkStatus>>) -> String {
    let Some(trunks) = trunks else {
        return "No trunks: set trunk_config in privateness.conf [general] (docs/skywire-trunk.md)\n".into();
    };
    let mut s = String::new();
    let _ = writeln!(s, "{:<16} {:<5} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}  Carrier", "Trunk", "State", "Sessions", "Failures", "SIP out", "SIP in", "RTP out", "RTP in", "Dropped");
    for t in &trunks {
        let _ = writeln!(
            s,
            "{:<16} {:<5} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}  {}",
            t.name,
            if t.up { "up" } else { "down" },
            t.sessions,
            t.failures,
            t.sip_out,
            t.sip_in,
            t.rtp_out,
            t.rtp_in,
            t.rtp_dropped,
            t.carrier
        );
        let _ = writeln!(s, "  {} <-> {} (peer visor {}), waiting {}, unroutable {}", t.local, t.owned, t.peer, t.waiting, t.unroutable);
        if !t.last_failure.is_empty() {
            let _ = writeln!(s, "  last failure: {}", t.last_failure);
        }
    }
    let _ = writeln!(s, "{} trunk(s)", trunks.len());
    s
}

unsafe extern "C" fn cli_trunks(e: *mut ast_cli_entry, cmd: c_int, a: *mut ast_cli_args) -> *mut c_char {
    let _busy = Busy::enter();
    fence("privateness show trunks", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"privateness show trunks", c"Usage: privateness show trunks\n       Skywire trunks (trunk_config): up or down, sessions, failures, SIP and RTP each way, RTP dropped.\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                if a.argc != 3 {
                    return CLI_SHOWUSAGE;
                }
                out(a.fd, &show_text(engine().and_then(|e| e.trunk_statuses())));
                CLI_SUCCESS
            }
        }
    })
}

pub static SHOW: Global<ast_cli_entry> = Global::new(entry(c"Show the Skywire trunks", cli_trunks));
