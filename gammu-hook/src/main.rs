//! The `ness-gammu-hook` command: `receive` is gammu-smsd's RunOnReceive program,
//! `forward` and `modem` are the daemons, `spool` is for the operator.

use std::io::BufRead;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ness_core::sms::Sms;
use ness_gammu_hook::config::Config;
use ness_gammu_hook::receive::{self, Received};
use ness_gammu_hook::smsdrc::Smsdrc;
use ness_gammu_hook::spool::{self, Spool};
use ness_gammu_hook::{forward, metrics, modem};

#[derive(Parser)]
#[command(name = "ness-gammu-hook", version, about = "Received SMS from gammu-smsd or a modem, sealed and delivered to the renter's inbox")]
struct Cli {
    /// The configuration file (see dist/sms.toml).
    #[arg(long, short, global = true, env = "NESS_SMS_CONFIG", default_value = "/etc/ness/sms.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// gammu-smsd's RunOnReceive: spool the received message durably and exit.
    Receive {
        /// What gammu-smsd appends: inbox file names (files) or row ids (sql).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        locations: Vec<String>,
    },
    /// Deliver spooled messages to the renters' inboxes (a daemon).
    Forward,
    /// Read SMS from a modem directly, with AT commands in PDU mode (a daemon).
    Modem {
        /// The modem's serial device (overrides [modem] device).
        #[arg(long)]
        device: Option<PathBuf>,
    },
    /// Look at and manage the spool.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Messages by state.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// The newest messages (ids, senders, states, errors; never texts).
    List {
        /// pending, delivered or held.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Retry held messages: the ids given, or all with --all.
    Release {
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Spool messages from a file of JSON lines (one message each; `-` for stdin).
    Import { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Receive { locations } => run_receive(&cli.config, &locations),
        Command::Forward => daemon(|| run_forward(&cli.config)),
        Command::Modem { device } => daemon(|| run_modem(&cli.config, device)),
        Command::Spool { command } => match run_spool(&cli.config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ness-gammu-hook: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// One RunOnReceive call. Every path ends with the message stored somewhere
/// durable, or (last resort) written whole into gammu-smsd's log.
fn run_receive(config_path: &std::path::Path, locations: &[String]) -> ExitCode {
    let env = receive::process_env();
    let config = Config::load(config_path).unwrap_or_else(|e| {
        eprintln!("ness-gammu-hook: {e}; spooling to the default place");
        Config::default()
    });
    let rc = Smsdrc::load(&config.gammu.smsdrc).unwrap_or_else(|e| {
        eprintln!("ness-gammu-hook: {e}; reading the message from the environment");
        Smsdrc::environment_only()
    });
    let Received { sms, warnings } = std::panic::catch_unwind(AssertUnwindSafe(|| receive::receive(&env, locations, &rc)))
        .unwrap_or_else(|_| Received {
            sms: receive::from_env(&env, &rc),
            warnings: vec!["internal error while reading the message; used the environment".into()],
        });
    for w in &warnings {
        eprintln!("ness-gammu-hook: {w}");
    }
    let stored = Spool::open(&config.spool.path, Duration::from_millis(config.spool.busy_timeout_ms))
        .and_then(|mut s| s.add(std::slice::from_ref(&sms)));
    match stored {
        Ok(added) => {
            let again = if added == 0 { " (already spooled)" } else { "" };
            println!("ness-gammu-hook: spooled {} from {:?}, {} part(s){again}", sms.id, sms.sender, sms.parts_received);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ness-gammu-hook: {e}");
            match spool::write_fallback(&config.spool.fallback_dir(), &sms) {
                Ok(path) => {
                    eprintln!("ness-gammu-hook: saved message {} as {} instead", sms.id, path.display());
                    ExitCode::SUCCESS
                }
                Err(e2) => {
                    eprintln!("ness-gammu-hook: cannot save the message anywhere ({e2}); here it is whole:");
                    eprintln!("{}", String::from_utf8_lossy(&sms.to_json()));
                    ExitCode::FAILURE
                }
            }
        }
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
    let handle = rt.handle().clone();
    forwarder.run(handle, stop).map_err(|e| e.to_string())
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

fn run_spool(config_path: &std::path::Path, command: SpoolCommand) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let mut spool = Spool::open(&config.spool.path, Duration::from_millis(config.spool.busy_timeout_ms)).map_err(|e| e.to_string())?;
    let err = |e: spool::SpoolError| e.to_string();
    match command {
        SpoolCommand::Stats { json } => {
            let c = spool.counts().map_err(err)?;
            if json {
                println!("{}", serde_json::to_string(&c).expect("counts serialise"));
            } else {
                println!("pending {}\ndelivered {}\nheld {}", c.pending, c.delivered, c.held);
            }
        }
        SpoolCommand::List { state, limit, json } => {
            let rows = spool.list(state.as_deref(), limit).map_err(err)?;
            if json {
                println!("{}", serde_json::to_string(&rows).expect("rows serialise"));
            } else {
                for r in rows {
                    let error = r.last_error.map(|e| format!("  ({e})")).unwrap_or_default();
                    println!("{}  {:<9}  {:>3} tries  {:<12}  {:?}{error}", r.id, r.state, r.attempts, r.phone_id, r.sender);
                }
            }
        }
        SpoolCommand::Release { ids, all } => {
            if ids.is_empty() && !all {
                return Err("name the messages to release, or --all".into());
            }
            let n = spool.release(&ids).map_err(err)?;
            println!("released {n} message(s)");
        }
        SpoolCommand::Import { file } => {
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?))
            };
            let mut batch = Vec::new();
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| format!("{}: {e}", file.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let m = Sms::from_json(line.as_bytes()).map_err(|e| format!("line {}: {e}", n + 1))?;
                if m.id_bytes().is_none() {
                    return Err(format!("line {}: id must be 32 hex digits", n + 1));
                }
                batch.push(m);
            }
            let added = spool.add(&batch).map_err(err)?;
            println!("spooled {added} new message(s) of {}", batch.len());
        }
    }
    Ok(())
}
