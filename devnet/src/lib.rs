//! ness-devnet: a stand-in emercoind for tests and the demo.
//!
//! It answers the JSON-RPC methods the suite uses — `name_*`, `signmessage`,
//! `verifymessage`, `randpay_*`, `getblockcount`, `generate` and wallet basics —
//! with the HTTP statuses, JSON shapes, error codes and limits of emercoind v0.8.6
//! (checked against replies captured from a real node: tests/fixtures.rs). Blocks
//! advance only on `generate` (or after each transaction with `automine`), names
//! expire by blocks, signatures are real secp256k1, and the state is kept in a
//! file. It also offers `devnet_fault` to make it fail the ways a real node fails.
//!
//! It is a test double: it does no proof of work, no networking and no validation
//! of real transactions, and its RANDPAY tickets are opaque tokens, not
//! transactions.

pub mod chain;
mod help;
pub mod http;
pub mod randpay;
pub mod rpc;
pub mod seed;
pub mod state;
pub mod univalue;
pub mod wallet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use ness_core::nvs::{Credentials, NodeConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use rpc::{Fault, Node, State};

/// How to run a devnet.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    pub listen: SocketAddr,
    /// rpcuser/rpcpassword; `None` writes a `.cookie` file instead (needs `datadir`)
    /// or, without a datadir, makes up a random password.
    pub credentials: Option<(String, String)>,
    /// Holds `devnet-state.json` and `regtest/.cookie`; `None` keeps state in memory.
    pub datadir: Option<PathBuf>,
    pub automine: bool,
    pub disable_wallet: bool,
    /// Fixed transaction time (like emercoind's -mocktime).
    pub mocktime: Option<i64>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        DevnetConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: None,
            datadir: None,
            automine: false,
            disable_wallet: false,
            mocktime: None,
        }
    }
}

/// A running devnet.
pub struct DevnetHandle {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub cookie_file: Option<PathBuf>,
    shared: Arc<http::Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DevnetHandle {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Settings for a client of this devnet.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig::new(self.url(), Credentials::UserPassword { user: self.user.clone(), password: self.password.clone() })
    }

    /// Direct access to the node, for tests that set up state or faults.
    pub fn with_node<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut node = self.shared.node.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut node)
    }

    /// Stop serving, save the state, remove the cookie file.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(c) = &self.cookie_file {
            let _ = std::fs::remove_file(c);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    State(String),
    #[error("cannot write the cookie file {path}: {source}")]
    Cookie { path: PathBuf, source: std::io::Error },
}

/// Start a devnet on the current tokio runtime.
pub async fn start(config: DevnetConfig) -> Result<DevnetHandle, DevnetError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DevnetError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| DevnetError::Listen { addr: config.listen, source })?;

    let state_file = config.datadir.as_ref().map(|d| d.join("devnet-state.json"));
    if let Some(d) = &config.datadir {
        std::fs::create_dir_all(d).map_err(|e| DevnetError::State(format!("cannot create {}: {e}", d.display())))?;
    }
    let mut node = match &state_file {
        Some(path) => match state::load(path).map_err(DevnetError::State)? {
            Some(s) => Node::new(s),
            None => Node::fresh(),
        },
        None => Node::fresh(),
    };
    node.automine = config.automine;
    node.wallet_disabled = config.disable_wallet;
    node.mocktime = config.mocktime;
    node.dirty = true;

    let (user, password, cookie_file) = match &config.credentials {
        Some((u, p)) => (u.clone(), p.clone(), None),
        None => {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            let password = hex::encode(secret);
            let cookie = match &config.datadir {
                Some(d) => {
                    let path = d.join("regtest").join(".cookie");
                    write_cookie(&path, &password).map_err(|source| DevnetError::Cookie { path: path.clone(), source })?;
                    Some(path)
                }
                None => None,
            };
            ("__cookie__".to_owned(), password, cookie)
        }
    };
    let authorization =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    let shared = Arc::new(http::Shared { node: Mutex::new(node), authorization, state_file });
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(http::serve(listener, shared.clone(), rx));
    Ok(DevnetHandle { addr, user, password, cookie_file, shared, shutdown: tx, task })
}

fn write_cookie(path: &std::path::Path, password: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(format!("__cookie__:{password}").as_bytes())
}
