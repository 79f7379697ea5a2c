//! `ness-devnet`: run the stand-in emercoind.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ness_core::nvs::NvsClient;

/// A stand-in emercoind for tests and demos (regtest addresses, real signatures).
#[derive(Parser, Debug)]
#[command(name = "ness-devnet", version)]
struct Args {
    /// Address to listen on (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:6662")]
    listen: SocketAddr,
    /// Directory for devnet-state.json and regtest/.cookie.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// RPC user (with --rpcpassword); without them a cookie file is written.
    #[arg(long, requires = "rpcpassword")]
    rpcuser: Option<String>,
    #[arg(long, env = "NESS_DEVNET_RPCPASSWORD", hide_env_values = true)]
    rpcpassword: Option<String>,
    /// Mine a block after every transaction.
    #[arg(long)]
    automine: bool,
    /// Start like emercoind -disablewallet.
    #[arg(long)]
    disablewallet: bool,
    /// Register the demo verifier and numbers at start (implies --automine).
    #[arg(long)]
    seed_demo: bool,
    /// Also register N signed numbers +1555000XXXX (+1555NNNNNNN beyond 10 000) for benchmarks (needs --seed-demo).
    #[arg(long, requires = "seed_demo", default_value_t = 0)]
    seed_numbers: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let config = ness_devnet::DevnetConfig {
        listen: args.listen,
        credentials: args.rpcuser.zip(args.rpcpassword),
        datadir: args.datadir,
        automine: args.automine || args.seed_demo,
        disable_wallet: args.disablewallet,
        mocktime: None,
    };
    let handle = match ness_devnet::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ness-devnet: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("ness-devnet: JSON-RPC on {}", handle.url());
    match &handle.cookie_file {
        Some(c) => eprintln!("ness-devnet: cookie file {}", c.display()),
        None if handle.user == "__cookie__" => {
            eprintln!("ness-devnet: no --datadir and no --rpcpassword: random credentials, nobody can log in")
        }
        None => {}
    }
    if args.seed_demo {
        let client = match NvsClient::new(&handle.node_config()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ness-devnet: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        match ness_devnet::seed::seed_demo(&client).await {
            Ok(r) => eprintln!(
                "ness-devnet: demo data {} (verifier {} at {}), height {}",
                if r.created { "registered" } else { "already present" },
                ness_devnet::seed::VERIFIER,
                r.verifier_address,
                r.height
            ),
            Err(e) => {
                eprintln!("ness-devnet: seeding failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if args.seed_numbers > 0 {
            match ness_devnet::seed::seed_numbers(&client, args.seed_numbers).await {
                Ok(n) => eprintln!("ness-devnet: {n} benchmark numbers registered"),
                Err(e) => {
                    eprintln!("ness-devnet: seeding numbers failed: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    }
    eprintln!("ness-devnet: ready");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ness-devnet: cannot watch SIGTERM: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("ness-devnet: stopping");
    handle.stop().await;
    std::process::ExitCode::SUCCESS
}
