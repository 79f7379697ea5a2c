//! What a hook sees and what it may answer, as plain Rust types (no Lua here):
//! the hosts fill the contexts and act on the decisions; sandbox.rs turns them
//! into read-only Lua tables and reads the answers back, checking each field.

/// One ENUM route, as `on_enum` sees it (and may return).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub uri: String,
    pub order: u16,
    pub preference: u16,
    /// Kamailio's q in thousandths (1000 = 1.0), as the module would set it.
    pub q: i32,
}

/// `on_enum(ctx)`: after ENUM resolution, before the call is routed.
#[derive(Clone, Debug, Default)]
pub struct EnumCtx {
    /// The called number, `+` and digits.
    pub number: String,
    /// The caller as the host knows it (From user, CALLERID(num)); may be empty.
    pub caller: String,
    /// The ENUM service asked for, e.g. `E2U+sip`.
    pub service: String,
    /// The routes the module would use, best first.
    pub candidates: Vec<Candidate>,
}

/// What `on_enum` decided.
#[derive(Clone, Debug, PartialEq)]
pub enum EnumDecision {
    /// Route to these, in this order (possibly none: no route).
    Route(Vec<Candidate>),
    /// Refuse the call with a SIP status code (400–699) and reason.
    Reject { code: u16, reason: String },
}

/// `tariff(ctx)`: the price of a RANDPAY-metered call.
#[derive(Clone, Debug, Default)]
pub struct CallCtx {
    pub number: String,
    pub caller: String,
    /// The tariff the host would use (its configured line), if any.
    pub default: Option<TariffDecision>,
}

/// A tariff from `tariff` (each field checked).
#[derive(Clone, Debug, PartialEq)]
pub struct TariffDecision {
    /// EMC per minute, as a decimal string (e.g. `"0.01"`), as in tariff lines.
    pub price: String,
    /// 1 in `risk` tickets wins.
    pub risk: u32,
    pub interval_secs: u32,
    pub grace_secs: u32,
}

impl TariffDecision {
    /// As a RANDPAY tariff line for `prefix` (docs/randpay.md: `+49 0.01 risk=2 interval=10 grace=3`).
    pub fn line(&self, prefix: &str) -> String {
        format!("{prefix} {} risk={} interval={} grace={}", self.price, self.risk, self.interval_secs, self.grace_secs)
    }
}

/// `on_sms(msg)`: a received SMS before it is sealed for its renter.
#[derive(Clone, Debug, Default)]
pub struct SmsCtx {
    pub from: String,
    pub text: String,
    /// gammu-smsd's PHONE_ID: which SIM received it.
    pub phone_id: String,
    /// The renter it would go to (the route's name).
    pub renter: String,
    /// When the modem received it (RFC 3339), if known.
    pub received: String,
}

/// What `on_sms` decided.
#[derive(Clone, Debug, PartialEq)]
pub enum SmsDecision {
    /// Seal and deliver it, with these tags, to this renter (None: the usual one).
    Deliver { tags: Vec<String>, renter: Option<String> },
    /// Do not deliver it (it is kept in the spool as dropped, with the reason).
    Drop { reason: String },
}

/// `on_trunk(ctx)`: which trunk carries a call to `number`.
#[derive(Clone, Debug, Default)]
pub struct TrunkCtx {
    pub number: String,
    pub caller: String,
    /// The trunks configured on this host, by name.
    pub trunks: Vec<String>,
}
