//! Gammu SMS backup files: what `inboxformat = detail` writes in the inbox, and what
//! gammu's dummy phone reads from `<device>/sms/<folder>/<n>` (the tests inject
//! messages that way). INI: one `[SMSBackupNNN]` section per physical SMS, the text
//! as hex UCS-2 in `Text00`, `Text01`, ..., the UDH as hex with its length byte.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One physical SMS of a backup file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupPart {
    pub number: String,
    /// `Sent = 20240102T030405`: the SMSC time stamp, as written.
    pub sent: Option<String>,
    pub coding: String,
    pub udh: Vec<u8>,
    /// The text as UTF-16 units (for `8bit`, each unit holds one byte of data).
    pub units: Vec<u16>,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// The parts of a backup file, in file order. Sections that are not SMS are skipped.
pub fn parse(text: &str) -> Result<Vec<BackupPart>, String> {
    let mut sections: Vec<BTreeMap<String, String>> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if name.to_ascii_lowercase().starts_with("smsbackup") {
                sections.push(BTreeMap::new());
            }
            continue;
        }
        if let (Some(section), Some((k, v))) = (sections.last_mut(), line.split_once('=')) {
            section.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut parts = Vec::new();
    for (n, s) in sections.iter().enumerate() {
        let get = |k: &str| s.get(k).map(|v| unquote(v).to_owned());
        let mut hex_text = String::new();
        for i in 0.. {
            match s.get(&format!("text{i:02}")) {
                Some(v) => hex_text.push_str(unquote(v)),
                None => break,
            }
        }
        let bytes = hex::decode(&hex_text).map_err(|_| format!("section {n}: Text is not hex"))?;
        if bytes.len() % 2 != 0 {
            return Err(format!("section {n}: Text is not whole UCS-2 units"));
        }
        let units = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        let udh = match get("udh") {
            Some(h) if !h.is_empty() => hex::decode(&h).map_err(|_| format!("section {n}: UDH is not hex"))?,
            _ => Vec::new(),
        };
        parts.push(BackupPart {
            number: get("number").unwrap_or_default(),
            sent: get("sent").or_else(|| get("datetime")),
            coding: get("coding").unwrap_or_else(|| "Default".into()),
            udh,
            units,
        });
    }
    Ok(parts)
}

/// A backup file with one incoming SMS (folder 1, unread), for gammu's dummy phone.
pub fn write_incoming(part: &BackupPart) -> String {
    let mut out = String::from("[SMSBackup000]\n");
    let _ = writeln!(out, "Number = \"{}\"", part.number);
    out.push_str("PDU = Deliver\nState = UnRead\nFolder = 1\nClass = -1\n");
    if let Some(sent) = &part.sent {
        let _ = writeln!(out, "Sent = {sent}");
    }
    let _ = writeln!(out, "Coding = {}", part.coding);
    if !part.udh.is_empty() {
        let _ = writeln!(out, "UDH = {}", hex::encode_upper(&part.udh));
    }
    let hex_text: String = part.units.iter().map(|u| format!("{u:04X}")).collect();
    for (i, chunk) in hex_text.as_bytes().chunks(200).enumerate() {
        let _ = writeln!(out, "Text{i:02} = {}", std::str::from_utf8(chunk).expect("hex is ASCII"));
    }
    out
}

/// The concatenation facts of a UDH (with its length byte): (reference, total, sequence).
pub fn concat_of(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let body = udh.get(1..)?;
    let mut i = 0;
    while i + 2 <= body.len() {
        let (iei, len) = (body[i], body[i + 1] as usize);
        let data = body.get(i + 2..i + 2 + len)?;
        match (iei, len) {
            (0x00, 3) => return Some((data[0] as u16, data[1], data[2])),
            (0x08, 4) => return Some((u16::from_be_bytes([data[0], data[1]]), data[2], data[3])),
            _ => i += 2 + len,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_udh_and_long_text() {
        let text = "Привет 👋 ".repeat(12);
        let part = BackupPart {
            number: "+79161234567".into(),
            sent: Some("20240102T030405".into()),
            coding: "Unicode".into(),
            udh: vec![0x05, 0x00, 0x03, 0xA7, 0x03, 0x01],
            units: text.encode_utf16().collect(),
        };
        let file = write_incoming(&part);
        assert!(file.contains("Text01 = "), "long texts are split over lines");
        let back = parse(&file).unwrap();
        assert_eq!(back, vec![part.clone()]);
        assert_eq!(String::from_utf16(&back[0].units).unwrap(), text);
        assert_eq!(concat_of(&part.udh), Some((0xA7, 3, 1)));
        assert_eq!(concat_of(&[0x06, 0x08, 0x04, 0xBE, 0xEF, 0x02, 0x01]), Some((0xBEEF, 2, 1)));
        assert_eq!(concat_of(&[0x05, 0x00, 0x03]), None);
    }

    #[test]
    fn bad_hex_is_an_error() {
        assert!(parse("[SMSBackup000]\nText00 = XYZ\n").unwrap_err().contains("not hex"));
    }
}
