//! `ness-trunk`: the standalone trunk relay (README.md). It reads the
//! `[[trunk]]` tables of its TOML file, binds each trunk's relay sockets and
//! keeps each trunk's carrier up until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ness_core::trunk::config;
use ness_core::trunk::host;

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
    let running = match host::start(trunks, stop).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ness-trunk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = async {
        if status_every.is_zero() {
            return std::future::pending().await;
        }
        let mut every = tokio::time::interval(status_every);
        every.tick().await;
        loop {
            every.tick().await;
            for t in &running {
                tracing::info!("{}", t.status());
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
    for mut t in running {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut t.task).await;
    }
    ExitCode::SUCCESS
}
