//! The `ness-gammu-hook` command: `receive` is gammu-smsd's RunOnReceive program,
//! `forward` and `modem` start the daemons (ness-sms-daemon), `spool` is for the operator.

use std::io::BufRead;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ness_core::sms::Sms;
use ness_gammu_hook::config::Config;
use ness_gammu_hook::receive::{self, Received};
use ness_gammu_hook::smsdrc::Smsdrc;
use ness_gammu_hook::spool::{self, Spool};

#[derive(Parser)]
#[command(name = "ness-gammu-hook", version, about = "Received SMS from gammu-smsd or a modem, sealed and delivered to the renter's inbox")]
struct Cli {
    /// The configuration file (see dialplan/gammu/sms.toml).
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
    /// Deliver spooled messages to the renters' inboxes (a daemon; runs ness-sms-daemon).
    Forward,
    /// Read SMS from a modem directly, with AT commands in PDU mode (a daemon; runs
    /// ness-sms-daemon).
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
        Command::Forward => exec_daemon(&cli.config, &["forward".as_ref()]),
        Command::Modem { device } => match device {
            Some(d) => exec_daemon(&cli.config, &["modem".as_ref(), "--device".as_ref(), d.as_os_str()]),
            None => exec_daemon(&cli.config, &["modem".as_ref()]),
        },
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
    if locations.is_empty() && !env.contains_key("SMS_MESSAGES") && !env.contains_key("SMS_1_NUMBER") {
        eprintln!(
            "ness-gammu-hook: no message here: `receive` is run by gammu-smsd (RunOnReceive), which passes \
             the message in SMS_* variables or as inbox file names/row ids; nothing was spooled"
        );
        return ExitCode::from(2);
    }
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

/// `forward` and `modem` run in ness-sms-daemon, installed next to this binary:
/// keeping tokio and the HTTP stack out of this one keeps `receive` quick to start
/// (gammu-smsd waits for it). The daemon gets the same arguments.
fn exec_daemon(config: &std::path::Path, args: &[&std::ffi::OsStr]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map(|e| e.with_file_name("ness-sms-daemon"));
    let Ok(daemon) = exe else {
        eprintln!("ness-gammu-hook: cannot find my own path to start ness-sms-daemon");
        return ExitCode::FAILURE;
    };
    let err = std::process::Command::new(&daemon).arg("--config").arg(config).args(args).exec();
    eprintln!("ness-gammu-hook: cannot start {}: {err}", daemon.display());
    ExitCode::FAILURE
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
