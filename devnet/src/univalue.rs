//! JSON the way emercoind's patched UniValue reads and writes it, on bytes.
//!
//! Requests are read in "legacy" mode: raw bytes pass through, and a `\uXXXX`
//! escape becomes one byte (its low 8 bits), so `"test:\u0461"` names `test:a`.
//! Replies are written compactly in member order; in single replies bytes ≥ 0x80
//! are written raw (so a binary value yields a body that is not UTF-8), in batch
//! replies every such byte is written as `\u00XX` (docs/emercoin.md §1.4).

/// A JSON value whose strings are byte strings and whose numbers keep their text.
#[derive(Clone, Debug, PartialEq)]
pub enum Uv {
    Null,
    Bool(bool),
    /// A number as printed (`53`, `0.500000`).
    Num(String),
    Str(Vec<u8>),
    Arr(Vec<Uv>),
    Obj(Vec<(String, Uv)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError;

impl Uv {
    pub fn str(s: impl AsRef<[u8]>) -> Uv {
        Uv::Str(s.as_ref().to_vec())
    }

    pub fn int(i: i64) -> Uv {
        Uv::Num(i.to_string())
    }

    /// An amount in base units (1 EMC = 1 000 000), printed with six decimals.
    pub fn amount(units: i64) -> Uv {
        let sign = if units < 0 { "-" } else { "" };
        let a = units.unsigned_abs();
        Uv::Num(format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000))
    }

    pub fn obj(members: Vec<(&str, Uv)>) -> Uv {
        Uv::Obj(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn get(&self, key: &str) -> Option<&Uv> {
        match self {
            Uv::Obj(m) => m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Uv::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is an integer (`12`, not `1.5` or `"12"`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Uv::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Uv::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Uv::Null => "null",
            Uv::Bool(_) => "bool",
            Uv::Num(_) => "number",
            Uv::Str(_) => "string",
            Uv::Arr(_) => "array",
            Uv::Obj(_) => "object",
        }
    }

    /// Serialise. `escape_high` writes bytes ≥ 0x80 as `\u00XX` (batch replies).
    pub fn write(&self, out: &mut Vec<u8>, escape_high: bool) {
        match self {
            Uv::Null => out.extend_from_slice(b"null"),
            Uv::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Uv::Num(n) => out.extend_from_slice(n.as_bytes()),
            Uv::Str(s) => write_str(out, s, escape_high),
            Uv::Arr(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out, escape_high);
                }
                out.push(b']');
            }
            Uv::Obj(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k.as_bytes(), escape_high);
                    out.push(b':');
                    v.write(out, escape_high);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out, false);
        out
    }
}

fn write_str(out: &mut Vec<u8>, s: &[u8], escape_high: bool) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            0x80..=0xff if escape_high => out.extend_from_slice(format!("\\u{b:04X}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Parse a request body in legacy mode.
pub fn parse(input: &[u8]) -> Result<Uv, ParseError> {
    let mut p = Parser { b: input, i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(ParseError);
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Result<(), ParseError> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(ParseError)
        }
    }

    fn value(&mut self) -> Result<Uv, ParseError> {
        self.ws();
        self.depth += 1;
        if self.depth > 512 {
            return Err(ParseError);
        }
        let v = match self.b.get(self.i).ok_or(ParseError)? {
            b'n' => self.eat(b"null").map(|_| Uv::Null),
            b't' => self.eat(b"true").map(|_| Uv::Bool(true)),
            b'f' => self.eat(b"false").map(|_| Uv::Bool(false)),
            b'"' => self.string().map(Uv::Str),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(ParseError),
                        }
                    }
                }
                Ok(Uv::Arr(items))
            }
            b'{' => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return Err(ParseError);
                        }
                        let k = self.string()?;
                        self.ws();
                        self.eat(b":")?;
                        let v = self.value()?;
                        members.push((String::from_utf8_lossy(&k).into_owned(), v));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(ParseError),
                        }
                    }
                }
                Ok(Uv::Obj(members))
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(ParseError),
        };
        self.depth -= 1;
        v
    }

    fn number(&mut self) -> Result<Uv, ParseError> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.i < p.b.len() && p.b[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i > s
        };
        if !digits(self) {
            return Err(ParseError);
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(ParseError);
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(ParseError);
            }
        }
        Ok(Uv::Num(String::from_utf8_lossy(&self.b[start..self.i]).into_owned()))
    }

    fn string(&mut self) -> Result<Vec<u8>, ParseError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or(ParseError)?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or(ParseError)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or(ParseError)?;
                            let s = std::str::from_utf8(hex).map_err(|_| ParseError)?;
                            let v = u16::from_str_radix(s, 16).map_err(|_| ParseError)?;
                            self.i += 4;
                            // Legacy mode: only the low byte survives.
                            out.push((v & 0xff) as u8);
                        }
                        _ => return Err(ParseError),
                    }
                }
                0..=0x1f => return Err(ParseError),
                _ => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_unicode_escape_is_one_byte() {
        let v = parse(br#"{"params":["test:\u0461","\u00ff"]}"#).unwrap();
        let Uv::Arr(p) = v.get("params").unwrap() else { panic!() };
        assert_eq!(p[0], Uv::str("test:a"));
        assert_eq!(p[1], Uv::Str(vec![0xff]));
    }

    #[test]
    fn writes_raw_or_escaped_high_bytes() {
        let v = Uv::obj(vec![("value", Uv::Str(vec![0xff, 0, 0xfe, b'A'])), ("n", Uv::amount(500_000))]);
        let mut single = Vec::new();
        v.write(&mut single, false);
        assert_eq!(single, b"{\"value\":\"\xff\\u0000\xfeA\",\"n\":0.500000}");
        let mut batch = Vec::new();
        v.write(&mut batch, true);
        assert_eq!(batch, b"{\"value\":\"\\u00FF\\u0000\\u00FEA\",\"n\":0.500000}");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [&b"{"[..], b"[1,]", b"{\"a\" 1}", b"nul", b"\"\\x\"", b"1 2"] {
            assert_eq!(parse(bad), Err(ParseError), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
