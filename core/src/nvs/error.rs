//! Errors of the node client, worded for the operator who has to fix them.

use std::time::Duration;

/// JSON-RPC error codes emercoind uses (src/rpc/protocol.h).
pub mod rpc_code {
    pub const MISC: i64 = -1;
    pub const TYPE_ERROR: i64 = -3;
    /// Wallet error; `name_show` also uses it for "failed to read from name DB".
    pub const WALLET_ERROR: i64 = -4;
    pub const INVALID_ADDRESS: i64 = -5;
    pub const INSUFFICIENT_FUNDS: i64 = -6;
    pub const INVALID_PARAMETER: i64 = -8;
    pub const IN_INITIAL_DOWNLOAD: i64 = -10;
    pub const WALLET_NOT_FOUND: i64 = -18;
    pub const WALLET_NOT_SPECIFIED: i64 = -19;
    pub const DATABASE_ERROR: i64 = -20;
    pub const DESERIALIZATION_ERROR: i64 = -22;
    pub const VERIFY_ERROR: i64 = -25;
    pub const VERIFY_REJECTED: i64 = -26;
    pub const IN_WARMUP: i64 = -28;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INTERNAL_ERROR: i64 = -32603;
    pub const PARSE_ERROR: i64 = -32700;
}

/// Why a call to emercoind failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum NvsError {
    #[error("cannot reach the Emercoin node at {url}: {detail}")]
    Unreachable { url: String, detail: String },

    #[error("the Emercoin node did not answer {method} within {} ms", timeout.as_millis())]
    Timeout { method: String, timeout: Duration },

    #[error(
        "the Emercoin node refused the RPC credentials (HTTP 401); check rpcuser/rpcpassword \
         or the .cookie file"
    )]
    Unauthorized,

    #[error(
        "the Emercoin node is overloaded (HTTP 500 \"Work queue depth exceeded\"); raise \
         rpcthreads/rpcworkqueue in emercoin.conf"
    )]
    Busy,

    #[error("the Emercoin node is still starting ({0}); try again shortly")]
    WarmingUp(String),

    #[error("the Emercoin node is downloading blocks; names cannot be read until it has synced")]
    Syncing,

    #[error("the Emercoin node answered {method} with error {code}: {message}")]
    Rpc { method: String, code: i64, message: String },

    #[error("the Emercoin node sent a reply to {method} that is not valid JSON-RPC (HTTP {status}): {detail}")]
    Malformed { method: String, status: u16, detail: String },

    #[error("Emercoin node configuration: {0}")]
    Config(String),
}

impl NvsError {
    /// True when the node could not be asked or did not answer sensibly: the case in
    /// which a resolver may serve a stale answer instead of failing.
    pub fn is_node_failure(&self) -> bool {
        matches!(
            self,
            NvsError::Unreachable { .. }
                | NvsError::Timeout { .. }
                | NvsError::Unauthorized
                | NvsError::Busy
                | NvsError::WarmingUp(_)
                | NvsError::Syncing
                | NvsError::Malformed { .. }
        )
    }

    /// The JSON-RPC error code, when the node sent one.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            NvsError::Rpc { code, .. } => Some(*code),
            NvsError::WarmingUp(_) => Some(rpc_code::IN_WARMUP),
            NvsError::Syncing => Some(rpc_code::IN_INITIAL_DOWNLOAD),
            _ => None,
        }
    }

    /// The node's error message, when it sent one.
    pub fn rpc_message(&self) -> Option<&str> {
        match self {
            NvsError::Rpc { message, .. } | NvsError::WarmingUp(message) => Some(message),
            _ => None,
        }
    }
}
