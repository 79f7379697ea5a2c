//! Received SMS: the message the pipeline carries ([`Sms`]), and what a modem
//! hands over in PDU mode — SMS-DELIVER decoding ([`pdu`]), the GSM 7-bit alphabet
//! ([`gsm7`]) and the joining of concatenated parts ([`concat`]); and the request a
//! forwarder sends to a renter's inbox ([`delivery`]). No I/O here: the
//! gammu hook and the modem reader (gammu-hook/) bring the bytes.

pub mod concat;
pub mod delivery;
pub mod gsm7;
pub mod message;
pub mod pdu;

pub use concat::{Assembled, Assembler};
pub use delivery::{Delivery, DeliveryError};
pub use message::{Sms, Source};
pub use pdu::{Body, Deliver, PduError, Scts};
