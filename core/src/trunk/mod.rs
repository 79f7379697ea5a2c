//! Skywire trunking (docs/skywire.md §3): SIP and RTP between two PBXes carried
//! as frames over a Skywire carrier (SOCKS5 CONNECT through skysocks-client, a
//! TCP forward, or a UDP forward), each PBX keeping its own addresses so no SIP
//! or SDP is rewritten.
//!
//! - [`frame`]: the frame and its codec (stream and datagram forms);
//! - [`hello`]: the handshake that proves both relays know the trunk secret;
//! - [`queue`]: what waits for the carrier (SIP never dropped, RTP drop-oldest);
//! - [`session`]: `FrameSource`/`FrameSink`, the one interface every carrier's
//!   halves implement, and the handshake driven over a stream carrier with a deadline;
//! - [`carrier`]: opening a stream carrier (SOCKS5 CONNECT or a TCP forward);
//! - [`datagram`]: the UDP carrier (a faithful-UDP forward), its retransmitting handshake;
//! - [`relay`]: the datagram side (the owned address's sockets) and one carrier session's traffic;
//! - [`link`]: keeping the trunk up (re-dial with backoff, accept one carrier after another);
//! - [`config`]: the `[[trunk]]` configuration every host reads;
//! - [`host`]: starting a file's trunks and showing their status, the same in every host.

pub mod carrier;
pub mod config;
pub mod datagram;
pub mod frame;
pub mod hello;
pub mod host;
pub mod link;
pub mod queue;
pub mod relay;
pub mod session;

pub use carrier::{Carrier, CarrierError, StreamCarrier};
pub use datagram::DatagramListener;
pub use frame::{Frame, FrameCodec, FrameError, FrameKind};
pub use hello::{Dialler, HandshakeError, Listener, TrunkIdentity, TrunkSecret, VisorKey};
pub use host::{RunningTrunk, TrunkStatus};
pub use link::{LinkState, LinkTimings, dial_forever, listen_forever, listen_udp_forever};
pub use queue::{MediaQueue, Outbox, OutboxCounters};
pub use relay::{Relay, RelayCounters, RelayPorts};
pub use session::{FrameSink, FrameSource, SessionError, accept, dial};
