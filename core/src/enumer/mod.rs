//! ENUM over Emercoin NVS: everything between a dialled number and a SIP URI.
//!
//! - [`e164`]: validating and normalising numbers; the names derived from them;
//! - [`record`]: ENUMER record values, read exactly as emcdns reads them;
//! - [`privatenumer`]: the privatenumer backend's layout (opt-in);
//! - [`naptr`]: NAPTR regexps (RFC 3402/6116), services, RFC 3403 ordering;
//! - [`trust`]: verifier signatures and revocation lists;
//! - [`answer`]: what a lookup produces;
//! - [`cache`]: bounded answer cache with negative and stale entries;
//! - [`resolver`]: the resolver tying it together over a [`NameSource`].

pub mod answer;
pub mod cache;
pub mod dialplan;
pub mod e164;
pub mod naptr;
pub mod privatenumer;
pub mod record;
pub mod registry;
pub mod resolver;
pub mod route;
pub mod source;
pub mod trust;

pub use answer::{EnumAnswer, IgnoredRecord, Layout, RecordInfo};
pub use e164::{E164, NumberError, parse_enumer_name, parse_privatenumer_name};
pub use naptr::{Naptr, NaptrRegexp, RegexpError, service_matches};
pub use record::{E2uLine, EnumerRecord, SigEntry, parse_enumer_value};
pub use resolver::{AnswerSource, CacheCarry, Lookup, ResolveError, Resolver, ResolverConfig, ResolverStats, StatsSnapshot};
pub use source::NameSource;
pub use trust::{Distrust, TrustPolicy};
