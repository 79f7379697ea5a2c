//! How `ness` finds the node: flags, environment, or `~/.emercoin/emercoin.conf`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ness_core::nvs::{Credentials, NodeConfig, NvsClient};

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// emercoind JSON-RPC URL.
    #[arg(long, global = true, env = "NESS_NODE_URL")]
    pub node_url: Option<String>,
    /// emercoin.conf to read the URL and credentials from (default ~/.emercoin/emercoin.conf).
    #[arg(long, global = true, env = "NESS_EMERCOIN_CONF")]
    pub emercoin_conf: Option<PathBuf>,
    #[arg(long, global = true, env = "NESS_RPCUSER")]
    pub rpcuser: Option<String>,
    /// RPC password (prefer the NESS_RPCPASSWORD environment variable or a cookie file).
    #[arg(long, global = true, env = "NESS_RPCPASSWORD", hide_env_values = true)]
    pub rpcpassword: Option<String>,
    /// The node's .cookie file.
    #[arg(long, global = true, env = "NESS_RPCCOOKIEFILE")]
    pub rpccookiefile: Option<PathBuf>,
    /// Wallet for writes and signatures when the node has several.
    #[arg(long, global = true, env = "NESS_WALLET")]
    pub wallet: Option<String>,
    /// Deadline of each RPC call, in milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    pub timeout_ms: u64,
}

impl NodeArgs {
    pub fn config(&self) -> Result<NodeConfig, String> {
        let conf = self.emercoin_conf.clone().or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".emercoin/emercoin.conf");
            (self.node_url.is_none() && p.exists()).then_some(p)
        });
        let mut node = match conf {
            Some(path) => NodeConfig::from_emercoin_conf(&path).map_err(|e| e.to_string())?,
            None => NodeConfig::new("http://127.0.0.1:6662/", Credentials::None),
        };
        if let Some(url) = &self.node_url {
            node.url = url.clone();
        }
        match (&self.rpcuser, &self.rpcpassword, &self.rpccookiefile) {
            (Some(u), Some(p), _) => node.credentials = Credentials::UserPassword { user: u.clone(), password: p.clone() },
            (_, _, Some(c)) => node.credentials = Credentials::CookieFile(c.clone()),
            (Some(_), None, None) => return Err("--rpcuser needs --rpcpassword (or NESS_RPCPASSWORD)".into()),
            _ => {}
        }
        if node.credentials == Credentials::None {
            return Err("no node credentials: give --rpcuser/--rpcpassword, --rpccookiefile or --emercoin-conf".into());
        }
        node.wallet = self.wallet.clone();
        node.timeout = Duration::from_millis(self.timeout_ms.max(1));
        Ok(node)
    }

    pub fn client(&self) -> Result<NvsClient, String> {
        NvsClient::new(&self.config()?).map_err(|e| e.to_string())
    }
}
