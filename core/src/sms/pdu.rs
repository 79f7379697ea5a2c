//! SMS-DELIVER PDUs (3GPP TS 23.040 §9.2.2.1), as a modem lists them in PDU mode
//! (`AT+CMGF=0`, `AT+CMGL=4`): the SMSC address, then the TPDU. Decoding checks
//! every length against the bytes present, so a malformed PDU (an over-long user
//! data length crashed gammu 1.42) is an error, never a panic. Encoding exists for
//! tests and fake modems, and splits long texts the way phones do.

use super::gsm7;

/// How the user data is encoded (from the DCS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    Eight,
    Ucs2,
}

/// The SMSC time stamp: local time at the SMSC and its offset in quarter hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scts {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub tz_quarters: i8,
}

impl Scts {
    /// RFC 3339, e.g. `2024-01-02T03:04:05+01:00`.
    pub fn rfc3339(&self) -> String {
        let q = i32::from(self.tz_quarters);
        let sign = if q < 0 { '-' } else { '+' };
        let m = q.abs() * 15;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            m / 60,
            m % 60
        )
    }
}

/// The concatenation information element (IEI 00 or 08).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// A part's user data, decoded as far as a single part allows: UCS-2 stays in code
/// units so that a surrogate pair split across parts joins up again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Ucs2(Vec<u16>),
    Binary(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    pub smsc: Option<String>,
    pub sender: String,
    pub pid: u8,
    pub dcs: u8,
    pub alphabet: Alphabet,
    pub class: Option<u8>,
    pub scts: Scts,
    pub concat: Option<Concat>,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("the PDU is not hexadecimal")]
    NotHex,
    #[error("the PDU ends early (reading {0})")]
    Truncated(&'static str),
    #[error("not an SMS-DELIVER (message type {0})")]
    NotDeliver(u8),
    #[error("sender address length {0} is too long")]
    AddressLength(u8),
    #[error("compressed user data is not supported (DCS {0:#04x})")]
    Compressed(u8),
    #[error("user data length {udl} exceeds the maximum of {max} for this alphabet")]
    UserDataLength { udl: u8, max: u8 },
    #[error("the user data header length {0} does not fit the user data")]
    HeaderLength(u8),
    #[error("UCS-2 user data has an odd number of octets")]
    OddUcs2,
    #[error("invalid digit in the time stamp")]
    TimeStamp,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        let v = *self.b.get(self.i).ok_or(PduError::Truncated(what))?;
        self.i += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        let end = self.i.checked_add(n).ok_or(PduError::Truncated(what))?;
        let s = self.b.get(self.i..end).ok_or(PduError::Truncated(what))?;
        self.i = end;
        Ok(s)
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.i..]
    }
}

fn bcd_digits(bytes: &[u8], count: usize) -> String {
    let mut s = String::with_capacity(count);
    for &b in bytes {
        for nibble in [b & 0x0F, b >> 4] {
            if s.len() == count {
                break;
            }
            match nibble {
                0..=9 => s.push((b'0' + nibble) as char),
                0xA => s.push('*'),
                0xB => s.push('#'),
                0xC => s.push('a'),
                0xD => s.push('b'),
                0xE => s.push('c'),
                _ => {} // 0xF: padding
            }
        }
    }
    s
}

fn bcd_value(b: u8) -> Result<u8, PduError> {
    let (lo, hi) = (b & 0x0F, b >> 4);
    if lo > 9 || hi > 9 {
        return Err(PduError::TimeStamp);
    }
    Ok(lo * 10 + hi)
}

/// Decode a hex PDU as `AT+CMGL` prints it.
pub fn decode_hex(hex_pdu: &str) -> Result<Deliver, PduError> {
    let bytes = hex::decode(hex_pdu.trim()).map_err(|_| PduError::NotHex)?;
    decode(&bytes)
}

/// Decode SMSC ‖ SMS-DELIVER TPDU.
pub fn decode(pdu: &[u8]) -> Result<Deliver, PduError> {
    let mut r = Reader { b: pdu, i: 0 };
    let smsc_len = r.u8("SMSC length")? as usize;
    let smsc = if smsc_len == 0 {
        None
    } else {
        let s = r.take(smsc_len, "SMSC address")?;
        let digits = bcd_digits(&s[1..], (smsc_len - 1) * 2);
        Some(if s[0] & 0x70 == 0x10 { format!("+{digits}") } else { digits })
    };
    let first = r.u8("first octet")?;
    if first & 0x03 != 0 {
        return Err(PduError::NotDeliver(first & 0x03));
    }
    let udhi = first & 0x40 != 0;

    let oa_len = r.u8("sender length")?;
    if oa_len > 20 {
        return Err(PduError::AddressLength(oa_len));
    }
    let toa = r.u8("sender type")?;
    let oa = r.take(usize::from(oa_len).div_ceil(2), "sender")?;
    let sender = if toa & 0x70 == 0x50 {
        let septets = usize::from(oa_len) * 4 / 7;
        gsm7::decode(&gsm7::unpack(oa, septets).ok_or(PduError::Truncated("sender"))?)
    } else {
        let digits = bcd_digits(oa, usize::from(oa_len));
        if toa & 0x70 == 0x10 { format!("+{digits}") } else { digits }
    };

    let pid = r.u8("protocol identifier")?;
    let dcs = r.u8("data coding scheme")?;
    let (alphabet, class) = match dcs >> 4 {
        0x0..=0x7 => {
            if dcs & 0x20 != 0 {
                return Err(PduError::Compressed(dcs));
            }
            let alphabet = match (dcs >> 2) & 0x03 {
                1 => Alphabet::Eight,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Gsm7,
            };
            (alphabet, (dcs & 0x10 != 0).then_some(dcs & 0x03))
        }
        0xC | 0xD => (Alphabet::Gsm7, None),
        0xE => (Alphabet::Ucs2, None),
        0xF => (if dcs & 0x04 != 0 { Alphabet::Eight } else { Alphabet::Gsm7 }, Some(dcs & 0x03)),
        _ => (Alphabet::Gsm7, None), // reserved groups: the default alphabet
    };

    let ts = r.take(7, "time stamp")?;
    let tz = ts[6];
    let tz_abs = (tz & 0x07) * 10 + (tz >> 4);
    if tz >> 4 > 9 {
        return Err(PduError::TimeStamp);
    }
    let scts = Scts {
        year: 2000 + u16::from(bcd_value(ts[0])?),
        month: bcd_value(ts[1])?,
        day: bcd_value(ts[2])?,
        hour: bcd_value(ts[3])?,
        minute: bcd_value(ts[4])?,
        second: bcd_value(ts[5])?,
        tz_quarters: if tz & 0x08 != 0 { -(tz_abs as i8) } else { tz_abs as i8 },
    };

    let udl = r.u8("user data length")?;
    let max = if alphabet == Alphabet::Gsm7 { 160 } else { 140 };
    if udl > max {
        return Err(PduError::UserDataLength { udl, max });
    }
    let ud_octets = if alphabet == Alphabet::Gsm7 { (usize::from(udl) * 7).div_ceil(8) } else { usize::from(udl) };
    let ud = r.take(ud_octets, "user data")?;
    let _trailing = r.rest();

    let mut concat = None;
    let mut header_octets = 0;
    if udhi {
        let udhl = *ud.first().ok_or(PduError::HeaderLength(0))?;
        if usize::from(udhl) + 1 > ud.len() {
            return Err(PduError::HeaderLength(udhl));
        }
        header_octets = usize::from(udhl) + 1;
        let mut ies = &ud[1..header_octets];
        while ies.len() >= 2 {
            let (iei, len) = (ies[0], usize::from(ies[1]));
            let Some(data) = ies.get(2..2 + len) else { break };
            match (iei, len) {
                (0x00, 3) if data[1] > 0 => {
                    concat = Some(Concat { reference: u16::from(data[0]), total: data[1], seq: data[2] })
                }
                (0x08, 4) if data[2] > 0 => {
                    concat = Some(Concat { reference: u16::from_be_bytes([data[0], data[1]]), total: data[2], seq: data[3] })
                }
                _ => {}
            }
            ies = &ies[2 + len..];
        }
    }

    let body = match alphabet {
        Alphabet::Gsm7 => {
            let skip = (header_octets * 8).div_ceil(7);
            if skip > usize::from(udl) {
                return Err(PduError::HeaderLength(header_octets as u8));
            }
            let septets = gsm7::unpack(ud, usize::from(udl)).ok_or(PduError::Truncated("user data"))?;
            Body::Text(gsm7::decode(&septets[skip..]))
        }
        Alphabet::Ucs2 => {
            let data = &ud[header_octets..];
            if data.len() % 2 != 0 {
                return Err(PduError::OddUcs2);
            }
            Body::Ucs2(data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
        }
        Alphabet::Eight => Body::Binary(ud[header_octets..].to_vec()),
    };
    Ok(Deliver { smsc, sender, pid, dcs, alphabet, class, scts, concat, body })
}

// ---- encoding (tests, fake modems, benchmarks) ------------------------------------

fn bcd_encode(digits: &str) -> Vec<u8> {
    let d: Vec<u8> = digits.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    d.chunks(2).map(|c| c[0] | (c.get(1).copied().unwrap_or(0xF) << 4)).collect()
}

fn address(sender: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(digits) = sender.strip_prefix('+').filter(|d| d.bytes().all(|b| b.is_ascii_digit())) {
        out.push(digits.len() as u8);
        out.push(0x91);
        out.extend(bcd_encode(digits));
    } else if !sender.is_empty() && sender.bytes().all(|b| b.is_ascii_digit()) {
        out.push(sender.len() as u8);
        out.push(0x81);
        out.extend(bcd_encode(sender));
    } else {
        let septets = gsm7::encode(sender).unwrap_or_else(|| gsm7::encode("?").expect("ascii"));
        let packed = gsm7::pack(&septets, 0);
        out.push((septets.len() * 7).div_ceil(4) as u8);
        out.push(0xD0);
        out.extend(packed);
    }
    out
}

fn scts_bytes(t: &Scts) -> [u8; 7] {
    let b = |v: u8| (v % 10) << 4 | (v / 10);
    let q = t.tz_quarters.unsigned_abs();
    let tz = ((q % 10) << 4) | (q / 10) | if t.tz_quarters < 0 { 0x08 } else { 0 };
    [b((t.year % 100) as u8), b(t.month), b(t.day), b(t.hour), b(t.minute), b(t.second), tz]
}

/// SMS-DELIVER PDUs (hex, with an empty SMSC field) carrying `text` from `sender`:
/// one part if it fits, else concatenated parts with an 8-bit reference, split by
/// septets (never inside an escape pair) or UTF-16 units (never inside a surrogate
/// pair), as phones do.
pub fn encode_text(sender: &str, text: &str, scts: &Scts, reference: u8) -> Vec<String> {
    let gsm = gsm7::encode(text);
    // Units: septet groups (1 or 2) or UTF-16 groups (1 or 2), each kept whole.
    let (units, single, per_part): (Vec<Vec<u16>>, usize, usize) = match &gsm {
        Some(_) => (
            text.chars()
                .map(|c| {
                    let (s, n) = gsm7::encode_char(c).expect("checked");
                    s[..n].iter().map(|&x| u16::from(x)).collect()
                })
                .collect(),
            160,
            153,
        ),
        None => (text.chars().map(|c| c.encode_utf16(&mut [0u16; 2]).to_vec()).collect(), 70, 67),
    };
    let total_len: usize = units.iter().map(Vec::len).sum();
    let mut parts: Vec<Vec<u16>> = Vec::new();
    if total_len <= single {
        parts.push(units.concat());
    } else {
        let mut cur = Vec::new();
        for u in units {
            if cur.len() + u.len() > per_part {
                parts.push(std::mem::take(&mut cur));
            }
            cur.extend(u);
        }
        parts.push(cur);
    }
    let total = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut pdu = vec![0x00u8]; // no SMSC
            let udh: Vec<u8> = if total > 1 { vec![0x05, 0x00, 0x03, reference, total as u8, (i + 1) as u8] } else { vec![] };
            pdu.push(if total > 1 { 0x44 } else { 0x04 });
            pdu.extend(address(sender));
            pdu.push(0x00); // PID
            pdu.push(if gsm.is_some() { 0x00 } else { 0x08 });
            pdu.extend(scts_bytes(scts));
            if gsm.is_some() {
                let septets: Vec<u8> = part.iter().map(|&s| s as u8).collect();
                let fill = (7 - (8 * udh.len()) % 7) % 7;
                let skip = (8 * udh.len()).div_ceil(7);
                pdu.push((skip + septets.len()) as u8);
                pdu.extend(&udh);
                pdu.extend(gsm7::pack(&septets, fill));
            } else {
                pdu.push((udh.len() + part.len() * 2) as u8);
                pdu.extend(&udh);
                for u in part {
                    pdu.extend(u.to_be_bytes());
                }
            }
            hex::encode_upper(pdu)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_pdus() {
        // shared/docs/gammu.md §7.4, decoded correctly by gammu.
        let d = decode_hex("0791947101670000040D91945111325476F800004210203040504005C8329BFD06").unwrap();
        assert_eq!(d.smsc.as_deref(), Some("+491710760000"));
        assert_eq!(d.sender, "+4915112345678");
        assert_eq!(d.alphabet, Alphabet::Gsm7);
        assert_eq!(d.scts.rfc3339(), "2024-01-02T03:04:05+01:00");
        assert_eq!(d.body, Body::Text("Hello".into()));
        assert_eq!(d.concat, None);
    }

    #[test]
    fn alphanumeric_senders_and_ucs2() {
        let t = Scts { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, tz_quarters: -8 };
        let pdus = encode_text("MyBank", "Привет 👋", &t, 1);
        assert_eq!(pdus.len(), 1);
        let d = decode_hex(&pdus[0]).unwrap();
        assert_eq!(d.sender, "MyBank");
        assert_eq!(d.scts, t);
        assert_eq!(d.scts.rfc3339(), "2024-01-02T03:04:05-02:00");
        let Body::Ucs2(units) = d.body else { panic!() };
        assert_eq!(String::from_utf16(&units).unwrap(), "Привет 👋");
    }

    #[test]
    fn long_texts_split_without_breaking_escapes_or_surrogates() {
        let t = Scts { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, tz_quarters: 4 };
        let text = "[x]".repeat(60); // 300 septets with the escapes
        let pdus = encode_text("+4915112345678", &text, &t, 0xA7);
        assert_eq!(pdus.len(), 2);
        let mut joined = String::new();
        for (i, p) in pdus.iter().enumerate() {
            let d = decode_hex(p).unwrap();
            assert_eq!(d.concat, Some(Concat { reference: 0xA7, total: 2, seq: i as u8 + 1 }));
            let Body::Text(s) = d.body else { panic!() };
            joined.push_str(&s);
        }
        assert_eq!(joined, text);
        let emoji = "👋".repeat(40); // 80 UTF-16 units
        let pdus = encode_text("+1555", &emoji, &t, 3);
        assert_eq!(pdus.len(), 2);
        let d = decode_hex(&pdus[0]).unwrap();
        let Body::Ucs2(units) = d.body else { panic!() };
        assert_eq!(units.len(), 66, "67 units would split a pair");
    }

    #[test]
    fn malformed_pdus_are_errors() {
        let good = hex::decode("0791947101670000040D91945111325476F800004210203040504005C8329BFD06").unwrap();
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut long = good.clone();
        let udl = long.len() - 6;
        long[udl] = 181; // gammu 1.42 smashed its stack on this
        assert_eq!(decode(&long), Err(PduError::UserDataLength { udl: 181, max: 160 }));
        let mut submit = good.clone();
        submit[8] = 0x01;
        assert_eq!(decode(&submit), Err(PduError::NotDeliver(1)));
        assert_eq!(decode_hex("zz"), Err(PduError::NotHex));
    }
}
