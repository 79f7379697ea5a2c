//! `ness-trunk`: the standalone trunk relay (README.md). It reads the
//! `[[trunk]]` tables of its TOML file, binds each trunk's relay sockets and
//! keeps each trunk's carrier up until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use ness_core::trunk::config::{self, Role};
use ness_core::trunk::{DatagramListener, LinkState, Relay, dial_forever, listen_forever, listen_udp_forever};

/// SIP and RTP between two PBXes over a Skywire carrier (SOCKS5, a TCP forward or a UDP forward).
#[derive(Parser, Debug)]
#[command(name = "ness-trunk", version)]
struct Args {
    /// The trunk file (see dist/trunk.toml).
    #[arg(short, long, default_value = "/etc/ness/trunk.toml")]
    config: PathBuf,
    /// Check the file (keys, secrets, permissions) and exit.
    #[arg(long)]
    check: bool,
    /// Log each trunk's counters this often (seconds; 0: never).
    #[arg(long, default_value_t = 60)]
    status_every: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let trunks = match config::load(&args.config) {
        Ok(t) if t.is_empty() => {
            eprintln!("ness-trunk: {} has no [[trunk]]", args.config.display());
            return ExitCode::from(2);
        }
        Ok(t) => t,
        Err(e) => {
            eprintln!("ness-trunk: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        for t in &trunks {
            println!("trunk {}: me {}, peer {}, {:?}", t.name, t.id.me, t.id.peer, t.role);
        }
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ness-trunk: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(trunks, Duration::from_secs(args.status_every)))
}

async fn run(trunks: Vec<config::Trunk>, status_every: Duration) -> ExitCode {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut shown = Vec::new();
    for t in trunks {
        let relay = match Relay::bind(t.ports.clone(), t.media).await {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("ness-trunk: trunk {}: {e}", t.name);
                return ExitCode::FAILURE;
            }
        };
        let state = Arc::new(LinkState::default());
        tracing::info!(
            "trunk {}: relaying {}:{:?} and RTP {:?} for the PBX at {}, {:?}",
            t.name,
            t.ports.owned,
            t.ports.sip,
            t.ports.rtp,
            t.ports.local,
            t.role
        );
        match t.role.clone() {
            Role::Listen(addr) => {
                let l = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("ness-trunk: trunk {}: cannot listen on {addr}: {e}", t.name);
                        return ExitCode::FAILURE;
                    }
                };
                tasks.push(tokio::spawn(listen_forever(relay.clone(), l, t.id.clone(), t.timings, state.clone(), stop.clone())));
            }
            Role::ListenUdp(addr) => {
                let l = match tokio::net::UdpSocket::bind(addr).await {
                    Ok(l) => DatagramListener::new(l),
                    Err(e) => {
                        eprintln!("ness-trunk: trunk {}: cannot listen on udp {addr}: {e}", t.name);
                        return ExitCode::FAILURE;
                    }
                };
                tasks.push(tokio::spawn(listen_udp_forever(relay.clone(), l, t.id.clone(), t.timings, state.clone(), stop.clone())));
            }
            Role::Dial(carrier) => {
                tasks.push(tokio::spawn(dial_forever(relay.clone(), carrier, t.id.clone(), t.timings, state.clone(), stop.clone())));
            }
        }
        shown.push((t.name.clone(), relay, state));
    }
    let status = async {
        if status_every.is_zero() {
            return std::future::pending().await;
        }
        let mut every = tokio::time::interval(status_every);
        every.tick().await;
        loop {
            every.tick().await;
            for (name, relay, state) in &shown {
                let c = &relay.counters;
                tracing::info!(
                    "trunk {name}: {} sessions {} failures {}; SIP out {} in {}; RTP out {} in {} dropped {}; unroutable {}",
                    if state.up.load(Ordering::SeqCst) { "up" } else { "down" },
                    state.sessions.load(Ordering::Relaxed),
                    state.failures.load(Ordering::Relaxed),
                    c.sip_out.load(Ordering::Relaxed),
                    c.sip_in.load(Ordering::Relaxed),
                    c.rtp_out.load(Ordering::Relaxed),
                    c.rtp_in.load(Ordering::Relaxed),
                    c.rtp_dropped.load(Ordering::Relaxed),
                    c.unroutable.load(Ordering::Relaxed)
                );
            }
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ness-trunk: cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = status => {}
    }
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    ExitCode::SUCCESS
}
