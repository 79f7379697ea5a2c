//! `ness`: the suite's command line. This release covers ENUM records and verifier
//! signatures; keys, envelopes and the SMS inbox come with the SMS pipeline.

mod enum_cmd;
mod node;
mod verifier;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ness", version, about = "Privateness PBX suite: ENUM on Emercoin NVS")]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    node: node::NodeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// ENUM records: lookup, register, list.
    #[command(subcommand)]
    Enum(enum_cmd::EnumCommand),
    /// Verifier signatures: sign, revoke.
    #[command(subcommand)]
    Verifier(verifier::VerifierCommand),
}

/// How results are printed.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn json_value(&self, v: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// A command's failure: the message, and the exit code (1 failure, 2 usage).
pub struct Failure {
    message: Option<String>,
    code: u8,
}

impl Failure {
    pub fn error(m: impl Into<String>) -> Self {
        Failure { message: Some(m.into()), code: 1 }
    }
    pub fn usage(m: impl Into<String>) -> Self {
        Failure { message: Some(m.into()), code: 2 }
    }
    /// A failure whose explanation is already in the JSON output.
    pub fn quiet_if(quiet: bool, m: impl Into<String>) -> Self {
        Failure { message: (!quiet).then(|| m.into()), code: 1 }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ness: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Enum(c) => enum_cmd::run(c, &cli.node, &out).await,
            Command::Verifier(c) => verifier::run(c, &cli.node, &out).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if let Some(m) = f.message {
                eprintln!("ness: {m}");
            }
            ExitCode::from(f.code)
        }
    }
}
