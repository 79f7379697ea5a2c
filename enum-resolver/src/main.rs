//! `ness-enum-resolver`: the daemon. See README.md for the configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ness_core::nvs::{Credentials, NodeConfig, NvsClient};
use ness_enum_resolver::config::Config;

/// ENUM over Emercoin NVS: a privatenumer-compatible HTTP API and a NAPTR DNS server.
#[derive(Parser, Debug)]
#[command(name = "ness-enum-resolver", version)]
struct Args {
    /// TOML configuration file (see dist/enum-resolver.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// HTTP API address (overrides [http] listen).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// DNS address, UDP and TCP (overrides [dns] listen; repeat for several).
    #[arg(long)]
    dns_listen: Vec<SocketAddr>,
    /// emercoind JSON-RPC URL (overrides [node] url).
    #[arg(long)]
    node_url: Option<String>,
    /// Read the node's URL and credentials from this emercoin.conf.
    #[arg(long)]
    emercoin_conf: Option<PathBuf>,
    #[arg(long)]
    rpcuser: Option<String>,
    #[arg(long, env = "NESS_RPCPASSWORD", hide_env_values = true)]
    rpcpassword: Option<String>,
    /// Also read the privatenumer layout (enum:<reversed digits>.e164.arpa).
    #[arg(long)]
    privatenumer_layout: bool,
    /// File holding the bearer token that enables POST /enum/register.
    #[arg(long)]
    register_token_file: Option<PathBuf>,
    /// Run against a built-in devnet seeded with a verifier and sample numbers.
    #[arg(long)]
    devnet: bool,
    /// Keep the devnet's state here (default: in memory).
    #[arg(long, requires = "devnet")]
    devnet_datadir: Option<PathBuf>,
    /// Address of the built-in devnet's JSON-RPC.
    #[arg(long, requires = "devnet", default_value = "127.0.0.1:0")]
    devnet_listen: SocketAddr,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ness-enum-resolver: {msg}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn,hickory_proto=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => return fail(e),
        },
        None => Config::default(),
    };
    if let Some(a) = args.http_listen {
        config.http.listen = Some(a);
    }
    if !args.dns_listen.is_empty() {
        config.dns.listen = args.dns_listen.clone();
    }
    if args.emercoin_conf.is_some() {
        config.node.emercoin_conf = args.emercoin_conf.clone();
    }
    if args.node_url.is_some() {
        config.node.url = args.node_url.clone();
    }
    if let (Some(u), Some(p)) = (&args.rpcuser, &args.rpcpassword) {
        config.node.user = Some(u.clone());
        config.node.password = Some(p.clone());
    }
    if args.privatenumer_layout {
        config.resolver.privatenumer_layout = true;
    }
    if args.register_token_file.is_some() {
        config.http.register_token_file = args.register_token_file.clone();
    }

    let mut devnet = None;
    let node = if args.devnet {
        let handle = match ness_devnet::start(ness_devnet::DevnetConfig {
            listen: args.devnet_listen,
            credentials: None,
            datadir: args.devnet_datadir.clone(),
            automine: true,
            ..Default::default()
        })
        .await
        {
            Ok(h) => h,
            Err(e) => return fail(format!("cannot start the devnet: {e}")),
        };
        let node = handle.node_config();
        let seeded = match NvsClient::new(&node) {
            Ok(c) => ness_devnet::seed::seed_demo(&c).await,
            Err(e) => Err(e),
        };
        match seeded {
            Ok(r) => eprintln!(
                "ness-enum-resolver: devnet at {} (height {}, verifier {} owned by {})",
                handle.url(),
                r.height,
                ness_devnet::seed::VERIFIER,
                r.verifier_address
            ),
            Err(e) => return fail(format!("cannot seed the devnet: {e}")),
        }
        if config.http.register_token.is_none() && config.http.register_token_file.is_none() {
            let mut b = [0u8; 16];
            rand::fill(&mut b);
            let token = hex::encode(b);
            eprintln!("ness-enum-resolver: devnet register token (POST /enum/register): {token}");
            config.http.register_token = Some(token);
        }
        devnet = Some(handle);
        node
    } else {
        match config.node_config() {
            Ok(n) => n,
            Err(e) => return fail(e),
        }
    };
    if !args.devnet && matches!(node.credentials, Credentials::None) {
        return fail("no node credentials");
    }
    let node: NodeConfig = node;

    let running = match ness_enum_resolver::start(&config, node).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(a) = running.http_addr {
        eprintln!("ness-enum-resolver: HTTP API on http://{a}/ (try /enum/lookup?number=%2B15551234567)");
    }
    for a in &running.dns_addrs {
        eprintln!(
            "ness-enum-resolver: DNS on {a} UDP+TCP (try dig @{} -p {} NAPTR 7.6.5.4.3.2.1.5.5.5.1.e164.arpa)",
            a.ip(),
            a.port()
        );
    }

    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot watch SIGTERM: {e}")),
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("ness-enum-resolver: stopping");
    running.stop().await;
    if let Some(d) = devnet {
        d.stop().await;
    }
    ExitCode::SUCCESS
}
