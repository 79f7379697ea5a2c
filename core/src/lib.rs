//! ness-core: all logic of the Privateness PBX suite, in plain Rust with no FFI and
//! no assumptions about the host it runs in (a Kamailio worker, an Asterisk thread,
//! a daemon or a command-line tool).
//!
//! - [`emercoin`]: addresses, keys and message signatures of the Emercoin chain;
//! - [`nvs`]: the emercoind JSON-RPC client (Name-Value Storage and friends);
//! - [`enumer`]: ENUM over NVS — numbers, ENUMER records, NAPTR, trust, the resolver,
//!   and the fork targets a proxy derives from an answer;
//! - [`settings`]: the settings the PBX modules take, parsed the same way for every host;
//! - [`envelope`]: sealed SMS envelopes, signatures, receipts and key files (ptool-compatible);
//! - [`sms`]: received SMS — the message type, SMS-DELIVER PDUs, GSM 7-bit, concatenation;
//! - [`randpay`]: RANDPAY metering — tariffs, challenges and tickets, the per-call schedule, the ledger;
//! - [`trunk`]: Skywire trunking — the frame codec and the trunk handshake;
//! - [`fence`]: panics caught before they reach a host's C code; [`causes`]: errors spelled out for operators.

pub mod causes;
pub mod emercoin;
pub mod enumer;
pub mod envelope;
pub mod fence;
pub mod hooks;
pub mod nvs;
pub mod randpay;
pub mod settings;
pub mod sms;
pub mod trunk;
