//! The emercoind JSON-RPC client.
//!
//! emercoind speaks JSON-RPC 1.0 over HTTP POST with basic auth (docs/emercoin.md §1).
//! This module knows its quirks: application errors come back as HTTP 500/404 with a
//! JSON body, a few failures are plain text, single replies may carry values that are
//! not UTF-8, and `name_show` reports a missing name as error -4 but a deleted or
//! expired one as a success with a flag. Every call has a hard deadline.
//!
//! - [`config`]: where the node is and how to log in (flags, `emercoin.conf`, `.cookie`);
//! - [`wire`]: request encoding and reply decoding, free of I/O;
//! - [`client`]: the async client ([`NvsClient`]);
//! - [`blocking`]: the same client for plain threads ([`BlockingNvsClient`]);
//! - [`types`]: typed results of the name methods.

pub mod blocking;
pub mod client;
pub mod config;
mod error;
pub mod types;
pub mod wire;

pub use blocking::BlockingNvsClient;
pub use client::NvsClient;
pub use config::{ConfigError, Credentials, EmercoinConf, NodeConfig};
pub use error::{NvsError, rpc_code};
pub use types::{FilterEntry, HistoryEntry, NameEntry, NameValue};
