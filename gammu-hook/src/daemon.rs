//! `ness-sms-daemon`: the long-running halves of the SMS pipeline, `forward` (spool →
//! renters' inboxes) and `modem` (a modem read directly). `ness-gammu-hook forward`
//! and `ness-gammu-hook modem` start this program with the same arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use ness_gammu_hook::config::Config;
use ness_gammu_hook::{forward, metrics, modem};

#[derive(Parser)]
#[command(name = "ness-sms-daemon", version, about = "The SMS forwarder and the direct modem reader")]
struct Cli {
    /// The configuration file (see dialplan/gammu/sms.toml).
    #[arg(long, short, global = true, env = "NESS_SMS_CONFIG", default_value = "/etc/ness/sms.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deliver spooled messages to the renters' inboxes.
    Forward,
    /// Read SMS from a modem directly, with AT commands in PDU mode.
    Modem {
        /// The modem's serial device (overrides [modem] device).
        #[arg(long)]
        device: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Forward => daemon(|| run_forward(&cli.config)),
        Command::Modem { device } => daemon(|| run_modem(&cli.config, device)),
    }
}

fn daemon(f: impl FnOnce() -> Result<(), String>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match f() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Set `stop` on SIGINT or SIGTERM.
fn stop_on_signals(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: finishing the deliveries in flight");
        s.store(true, Ordering::Relaxed);
    });
    stop
}

fn run_forward(config_path: &std::path::Path) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let forwarder = forward::Forwarder::new(config.clone()).map_err(|e| e.to_string())?;
    if let Some(addr) = config.forward.metrics_listen {
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(|e| format!("metrics on {addr}: {e}"))?;
        tracing::info!("metrics on http://{addr}/metrics");
        rt.spawn(metrics::serve(listener, forwarder.metrics.clone()));
    }
    let stop = stop_on_signals(&rt);
    let reload = Arc::new(AtomicBool::new(false));
    let r = reload.clone();
    rt.spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP: the hooks script cannot be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            r.store(true, Ordering::Relaxed);
        }
    });
    let handle = rt.handle().clone();
    forwarder.run(handle, stop, reload).map_err(|e| e.to_string())
}

fn run_modem(config_path: &std::path::Path, device: Option<PathBuf>) -> Result<(), String> {
    let mut config = Config::load(config_path).map_err(|e| e.to_string())?;
    if device.is_some() {
        config.modem.device = device;
    }
    let rt = runtime()?;
    let stop = stop_on_signals(&rt);
    rt.block_on(modem::run(config, stop)).map_err(|e| e.to_string())
}

