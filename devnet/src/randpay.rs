//! RANDPAY lottery tickets with emercoind's semantics (docs/emercoin.md §4):
//! the payee commits to a secret 160-bit X below ⌊2^160/risk⌋·risk and publishes
//! c = ⌊X/risk⌋; the payer picks r in [0, risk) and pays to c·risk + r; the ticket
//! wins iff that equals X, probability 1/risk. A challenge is consumed by one
//! accept, won or lost; challenges live in memory only.
//!
//! Devnet tickets are not real transactions: the hex carries the fields the payee
//! needs (a magic, the paid hash, amount, risk, flags, payer wallet, a nonce), so
//! clients must treat it as opaque, as they must with real tickets.

use rand::RngExt;

/// Magic at the start of a devnet ticket (hex "ecec" + "d3" for devnet).
const TICKET_MAGIC: [u8; 3] = [0xec, 0xec, 0xd3];

/// A 160-bit number as big-endian bytes.
pub type H160 = [u8; 20];

/// x / d and x % d for a 160-bit x and a small divisor.
pub fn divmod(x: &H160, d: u32) -> (H160, u32) {
    let mut q = [0u8; 20];
    let mut rem: u64 = 0;
    for (i, &b) in x.iter().enumerate() {
        let cur = (rem << 8) | u64::from(b);
        q[i] = (cur / u64::from(d)) as u8;
        rem = cur % u64::from(d);
    }
    (q, rem as u32)
}

/// c·m + r modulo 2^160, as the node's 160-bit arithmetic wraps.
pub fn mul_add(c: &H160, m: u32, r: u32) -> H160 {
    let mut out = [0u8; 20];
    let mut carry: u64 = u64::from(r);
    for i in (0..20).rev() {
        let v = u64::from(c[i]) * u64::from(m) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    out
}

/// A challenge the payee issued.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub x: H160,
    pub c: H160,
    pub amount: i64,
    pub risk: u32,
    /// Wallet that issued it (it receives the payment).
    pub wallet: String,
}

impl Challenge {
    /// Make a challenge whose X is uniformly random below ⌊2^160/risk⌋·risk.
    pub fn new(amount: i64, risk: u32, wallet: &str) -> Self {
        let max = [0xffu8; 20];
        let (top, _) = divmod(&max, risk);
        let limit = mul_add(&top, risk, 0);
        let mut rng = rand::rng();
        loop {
            let mut x = [0u8; 20];
            rng.fill(&mut x[..]);
            if x < limit {
                let (c, _) = divmod(&x, risk);
                return Challenge { x, c, amount, risk, wallet: wallet.to_owned() };
            }
        }
    }

    /// The `amount:risk:hex` string of `randpay_mkchap`.
    pub fn chap(&self) -> String {
        format!("{}:{}:{}", format_money(self.amount), self.risk, hex::encode(self.c))
    }

    /// Does a payment to `paid` belong to this challenge's range?
    pub fn covers(&self, paid: &H160) -> bool {
        divmod(paid, self.risk).0 == self.c
    }
}

/// A ticket as the payer's wallet builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub paid: H160,
    pub amount: i64,
    pub p2pkh: bool,
    pub payer: String,
    pub nonce: [u8; 8],
}

impl Ticket {
    pub fn new(c: &H160, risk: u32, amount: i64, p2pkh: bool, payer: &str) -> Self {
        let mut rng = rand::rng();
        let r = rng.random_range(0..risk);
        let mut nonce = [0u8; 8];
        rng.fill(&mut nonce[..]);
        Ticket { paid: mul_add(c, risk, r), amount, p2pkh, payer: payer.to_owned(), nonce }
    }

    pub fn to_hex(&self) -> String {
        let mut b = TICKET_MAGIC.to_vec();
        b.extend_from_slice(&self.paid);
        b.extend_from_slice(&self.amount.to_le_bytes());
        b.push(u8::from(self.p2pkh));
        b.extend_from_slice(&self.nonce);
        b.push(self.payer.len() as u8);
        b.extend_from_slice(self.payer.as_bytes());
        hex::encode(b)
    }

    /// Decode; `None` is "TX decode failed".
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = hex::decode(s).ok()?;
        let rest = b.strip_prefix(&TICKET_MAGIC)?;
        if rest.len() < 20 + 8 + 1 + 8 + 1 {
            return None;
        }
        let paid: H160 = rest[..20].try_into().ok()?;
        let amount = i64::from_le_bytes(rest[20..28].try_into().ok()?);
        let p2pkh = rest[28] == 1;
        let nonce: [u8; 8] = rest[29..37].try_into().ok()?;
        let len = usize::from(rest[37]);
        let payer = std::str::from_utf8(rest.get(38..38 + len)?).ok()?.to_owned();
        if rest.len() != 38 + len || amount <= 0 {
            return None;
        }
        Some(Ticket { paid, amount, p2pkh, payer, nonce })
    }

    /// A stable id for replay detection.
    pub fn id(&self) -> String {
        hex::encode(ness_core::emercoin::sha256d(&hex::decode(self.to_hex()).unwrap_or_default()))
    }
}

/// Bitcoin Core's FormatMoney with 6 decimals: trailing zeros trimmed down to two.
pub fn format_money(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let a = units.unsigned_abs();
    let mut s = format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000);
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(0) > 3 {
        s.pop();
    }
    s
}

/// Parse an amount in EMC ("0.50", "20") to base units, as the node does.
pub fn parse_money(s: &str) -> Option<i64> {
    ness_core::randpay::Amount::parse(s).map(|a| a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_like_the_node() {
        assert_eq!(format_money(500_000), "0.50");
        assert_eq!(format_money(20_000_000), "20.00");
        assert_eq!(format_money(1_234_567), "1.234567");
        assert_eq!(parse_money("0.50"), Some(500_000));
        assert_eq!(parse_money("20"), Some(20_000_000));
        assert_eq!(parse_money("garbage"), None);
    }

    #[test]
    fn arithmetic_and_round_trip() {
        let c = Challenge::new(500_000, 1_000_000, "");
        assert!(c.chap().starts_with("0.50:1000000:"));
        assert!(c.covers(&c.x));
        let t = Ticket::new(&c.c, c.risk, c.amount, true, "payer");
        assert!(c.covers(&t.paid));
        assert_eq!(Ticket::from_hex(&t.to_hex()), Some(t));
        assert_eq!(Ticket::from_hex("zz"), None);
        // Risk 1: every ticket wins.
        let c = Challenge::new(1, 1, "");
        let t = Ticket::new(&c.c, 1, 1, true, "p");
        assert_eq!(t.paid, c.x);
    }
}
