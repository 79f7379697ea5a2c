//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1),
//! and septet packing (LSB first, TS 23.038 §6.1.2.1).

/// The default alphabet, indexed by septet. 0x1B is the escape to the extension
/// table (shown here as a space; it never reaches text).
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

pub const ESCAPE: u8 = 0x1B;

/// The extension table: septet after an escape → character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Septets → text. An unknown extension code shows its default-table character (the
/// standard's fallback); a trailing escape is dropped.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut escaped = false;
    for &s in septets {
        let s = s & 0x7F;
        if escaped {
            escaped = false;
            match EXTENSION.iter().find(|(code, _)| *code == s) {
                Some((_, c)) => out.push(*c),
                None if s == ESCAPE => {}
                None => out.push(DEFAULT[s as usize]),
            }
        } else if s == ESCAPE {
            escaped = true;
        } else {
            out.push(DEFAULT[s as usize]);
        }
    }
    out
}

/// The septets for one character: one, two (escape + extension), or none if the
/// character is not in the GSM alphabet.
pub fn encode_char(c: char) -> Option<([u8; 2], usize)> {
    if let Some(i) = (0..128).find(|&i| i != usize::from(ESCAPE) && DEFAULT[i] == c) {
        return Some(([i as u8, 0], 1));
    }
    EXTENSION.iter().find(|(_, e)| *e == c).map(|(code, _)| ([ESCAPE, *code], 2))
}

/// Text → septets, or `None` if some character needs UCS-2.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = encode_char(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

/// Unpack `count` septets from `octets`, LSB first. Returns `None` if the octets
/// are too few.
pub fn unpack(octets: &[u8], count: usize) -> Option<Vec<u8>> {
    if octets.len() < (count * 7).div_ceil(8) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = i * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let mut v = u16::from(octets[byte]) >> shift;
        if shift > 1 {
            v |= u16::from(*octets.get(byte + 1).unwrap_or(&0)) << (8 - shift);
        }
        out.push((v & 0x7F) as u8);
    }
    Some(out)
}

/// Pack septets, LSB first, after `fill_bits` zero bits (used after a UDH).
pub fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let total_bits = fill_bits + septets.len() * 7;
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill_bits + i * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(s & 0x7F) << shift;
        out[byte] |= v as u8;
        if shift > 1 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values() {
        // shared/docs/gammu.md §7.4: "hellohello" packs to E8329BFD4697D9EC37.
        let septets = encode("hellohello").unwrap();
        assert_eq!(hex::encode_upper(pack(&septets, 0)), "E8329BFD4697D9EC37");
        assert_eq!(decode(&unpack(&hex::decode("E8329BFD4697D9EC37").unwrap(), 10).unwrap()), "hellohello");
        assert_eq!(encode("[€]").unwrap(), vec![0x1B, 0x3C, 0x1B, 0x65, 0x1B, 0x3E]);
        assert_eq!(decode(&[0x1B, 0x3C, 0x1B, 0x65, 0x1B, 0x3E, 0x00, 0x1B]), "[€]@");
        assert_eq!(decode(&[0x1B, 0x41]), "A", "unknown extension: the default character");
        assert_eq!(encode("Привет"), None);
        assert_eq!(encode(" "), Some(vec![0x20]));
    }

    #[test]
    fn every_character_round_trips() {
        let all: String = DEFAULT.iter().enumerate().filter(|(i, _)| *i != ESCAPE as usize).map(|(_, c)| *c).collect::<String>()
            + "^{}\\[~]|€";
        let septets = encode(&all).unwrap();
        // After a header of n octets the text starts on the next septet boundary.
        for n in 0..8usize {
            let fill = (7 - (8 * n) % 7) % 7;
            let mut ud = vec![0xAAu8; n];
            ud.extend(pack(&septets, fill));
            let start = (8 * n).div_ceil(7);
            let back = unpack(&ud, start + septets.len()).unwrap();
            assert_eq!(decode(&back[start..]), all, "header of {n} octets");
        }
    }
}
