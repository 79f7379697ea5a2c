//! The node client for plain threads (a Kamailio SIP worker, an Asterisk dialplan
//! thread): the async client driven by a private current-thread runtime, so a call
//! blocks its caller for at most the configured deadline and starts no threads.
//!
//! Create it after fork (in Kamailio's `child_init`), one per process or thread; do
//! not call it from inside an async runtime.

use std::future::Future;

use super::client::NvsClient;
use super::config::NodeConfig;
use super::error::NvsError;
use super::types::NameEntry;

pub struct BlockingNvsClient {
    runtime: tokio::runtime::Runtime,
    client: NvsClient,
}

impl BlockingNvsClient {
    pub fn new(config: &NodeConfig) -> Result<Self, NvsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NvsError::Config(format!("cannot start the client runtime: {e}")))?;
        let client = {
            let _guard = runtime.enter();
            NvsClient::new(config)?
        };
        Ok(BlockingNvsClient { runtime, client })
    }

    /// Run any async client call to completion on this thread.
    pub fn run<'a, F, T>(&'a self, call: impl FnOnce(&'a NvsClient) -> F) -> T
    where
        F: Future<Output = T> + 'a,
    {
        self.runtime.block_on(call(&self.client))
    }

    pub fn client(&self) -> &NvsClient {
        &self.client
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    pub fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        self.run(|c| c.name_show(name))
    }

    pub fn call(&self, method: &str, params: Vec<serde_json::Value>) -> Result<serde_json::Value, NvsError> {
        self.run(|c| c.call(method, params))
    }
}
