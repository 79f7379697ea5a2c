//! RANDPAY metering: pay-per-interval calls with Emercoin lottery tickets.
//!
//! The protocol between a payer PBX and a payee PBX is docs/randpay.md. Here:
//! tariffs and the ticket amount they imply ([`tariff`]), the challenge and ticket
//! formats ([`chap`]), the node calls with typed outcomes ([`node`]), the per-call
//! schedule of challenges and deadlines ([`meter`]) and the SQLite ledger that
//! survives a restart ([`ledger`]), and the payee's and payer's roles built from
//! them, for the PBX modules to drive ([`session`]).

pub mod chap;
pub mod config;
pub mod ledger;
pub mod meter;
pub mod node;
pub mod session;
pub mod side_channel;
pub mod side_payer;
pub mod tariff;

pub use chap::{Chap, ChapError, Ticket};
pub use config::{RandpayRole, RandpaySettings};
pub use ledger::{Ledger, LedgerError, Role};
pub use meter::{MeterState, PayeeMeter, PayerPolicy};
pub use node::{AcceptError, Accepted};
pub use session::{InviteDecision, PayeeAction, Payee, Payer, TariffHook};
pub use tariff::{Amount, Tariff, TariffError, TariffTable};
