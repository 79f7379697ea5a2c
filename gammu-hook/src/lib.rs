//! ness-gammu-hook: received SMS, from the SIM to the renter, losing none.
//!
//! - [`receive`]: gammu-smsd's `RunOnReceive` call → one [`ness_core::sms::Sms`]
//!   (environment, inbox files or database rows; [`smsdrc`] says which, [`backup`]
//!   reads gammu's backup files);
//! - [`spool`]: the durable queue between the hook, the modem reader and the forwarder;
//! - [`forward`]: sealing, signing, delivering and receipt-checking, by [`route`];
//! - [`modem`]: reading a modem directly (AT commands, PDU mode) without gammu;
//! - [`config`], [`metrics`], [`http`] (the client, direct or through SOCKS5).

pub mod backup;
pub mod config;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod modem;
pub mod receive;
pub mod route;
pub mod smsdrc;
pub mod spool;
