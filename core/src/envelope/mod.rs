//! The SMS envelope and its companions, byte-compatible with the privatenumer
//! `ptool_*` scripts: sealed envelopes (v1, and the self-describing v2 that binds
//! sender, recipient, message id and time), Ed25519 signatures over exact bytes,
//! signed delivery receipts, key files, and ptool's base64url and emercoin.conf
//! readers. Pure functions on bytes; files and the network are the callers' business.

pub mod b64u;
pub mod keyfile;
pub mod ptool_conf;
pub mod receipt;
pub mod seal;
pub mod signature;

pub use keyfile::{KeyError, KeyRole, Keyfile, box_public, box_secret, sign_public, sign_secret};
pub use receipt::{Receipt, ReceiptError, ReceiptTo};
pub use seal::{Opened, SealError, V2Header, open, open_v1, open_v2, seal_v1, seal_v2, verify_v2};
pub use signature::{SignatureError, sign, verify};
