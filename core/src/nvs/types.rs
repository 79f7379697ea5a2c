//! Typed results of emercoind's name methods (member names as the node emits them).

use base64::Engine;
use serde_json::Value;

use super::error::NvsError;

/// The bytes of an NVS value. Values are usually text, but the chain allows any
/// bytes up to 20480 of them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct NameValue(pub Vec<u8>);

impl NameValue {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl std::fmt::Debug for NameValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{s:?}"),
            None => write!(f, "0x{}", hex::encode(&self.0)),
        }
    }
}

impl From<&str> for NameValue {
    fn from(s: &str) -> Self {
        NameValue(s.as_bytes().to_vec())
    }
}

/// How a value travels in a reply (the `valuetype` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Raw,
    Hex,
    Base64,
}

impl ValueType {
    pub fn param(self) -> &'static str {
        match self {
            ValueType::Raw => "",
            ValueType::Hex => "hex",
            ValueType::Base64 => "base64",
        }
    }

    pub(crate) fn decode(self, method: &str, s: &str) -> Result<NameValue, NvsError> {
        let bytes = match self {
            ValueType::Raw => Ok(s.as_bytes().to_vec()),
            ValueType::Hex => hex::decode(s).map_err(|e| e.to_string()),
            ValueType::Base64 => base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| e.to_string()),
        };
        bytes.map(NameValue).map_err(|e| NvsError::Malformed {
            method: method.to_owned(),
            status: 200,
            detail: format!("value is not valid {}: {e}", self.param()),
        })
    }
}

/// One name as `name_show` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct NameEntry {
    pub name: String,
    pub value: NameValue,
    /// Transaction of the last operation on the name.
    pub txid: String,
    /// The current owner.
    pub address: String,
    pub vout: u32,
    /// Blocks until expiry; zero or negative once expired.
    pub expires_in: i64,
    /// Height at which the name expires (0 for a deleted name).
    pub expires_at: i64,
    /// Timestamp of the last operation's transaction (Unix seconds).
    pub time: i64,
    pub expired: bool,
    pub deleted: bool,
}

impl NameEntry {
    /// Deleted, flagged expired, or out of blocks: a resolver treats it as absent.
    /// (The node flags `expired` already at `expires_in == 0`, one block before
    /// emcdns stops answering; we follow the flag.)
    pub fn is_live(&self) -> bool {
        !self.deleted && !self.expired && self.expires_in > 0
    }
}

/// One element of `name_filter`, `name_scan` or `name_list`.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterEntry {
    pub name: String,
    pub value: NameValue,
    /// Height of the `name_new` that started the active chain (`name_filter` only).
    pub registered_at: Option<i64>,
    /// Current owner (`name_list` only).
    pub address: Option<String>,
    pub expires_in: i64,
    pub expired: bool,
    /// The wallet held this name but no longer owns it (`name_list` only).
    pub transferred: bool,
}

impl FilterEntry {
    pub fn is_live(&self) -> bool {
        !self.expired && self.expires_in > 0
    }
}

/// One operation from `name_history`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub txid: String,
    pub time: i64,
    pub height: i64,
    pub address: String,
    pub vout: u32,
    pub address_is_mine: bool,
    /// `name_new`, `name_update` or `name_delete`.
    pub operation: String,
    pub days_added: Option<i64>,
    pub value: Option<NameValue>,
}

pub(crate) struct Fields<'a> {
    method: &'a str,
    obj: &'a serde_json::Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(method: &'a str, v: &'a Value) -> Result<Self, NvsError> {
        match v.as_object() {
            Some(obj) => Ok(Fields { method, obj }),
            None => Err(NvsError::Malformed {
                method: method.to_owned(),
                status: 200,
                detail: format!("expected an object, got {}", type_name(v)),
            }),
        }
    }

    fn bad(&self, key: &str, want: &str) -> NvsError {
        NvsError::Malformed {
            method: self.method.to_owned(),
            status: 200,
            detail: format!("member {key:?} is missing or not {want}"),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, NvsError> {
        self.obj.get(key).and_then(Value::as_str).ok_or_else(|| self.bad(key, "a string"))
    }

    pub(crate) fn int(&self, key: &str) -> Result<i64, NvsError> {
        self.obj.get(key).and_then(Value::as_i64).ok_or_else(|| self.bad(key, "an integer"))
    }

    pub(crate) fn opt_int(&self, key: &str) -> Result<Option<i64>, NvsError> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| self.bad(key, "an integer")),
        }
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        match self.obj.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl NameEntry {
    /// Parse a `name_show` result (value as a plain string).
    pub fn from_reply(v: &Value) -> Result<Self, NvsError> {
        Self::from_json("name_show", v, ValueType::Raw)
    }

    pub(crate) fn from_json(method: &str, v: &Value, vt: ValueType) -> Result<Self, NvsError> {
        let f = Fields::new(method, v)?;
        Ok(NameEntry {
            name: f.str("name")?.to_owned(),
            value: vt.decode(method, f.str("value")?)?,
            txid: f.str("txid")?.to_owned(),
            address: f.str("address")?.to_owned(),
            vout: f.int("vout")?.try_into().map_err(|_| f.bad("vout", "a small integer"))?,
            expires_in: f.int("expires_in")?,
            expires_at: f.int("expires_at")?,
            time: f.int("time")?,
            expired: f.flag("expired"),
            deleted: f.flag("deleted"),
        })
    }
}

impl FilterEntry {
    pub(crate) fn from_json(method: &str, v: &Value, vt: ValueType) -> Result<Self, NvsError> {
        let f = Fields::new(method, v)?;
        Ok(FilterEntry {
            name: f.str("name")?.to_owned(),
            value: vt.decode(method, f.str("value")?)?,
            registered_at: f.opt_int("registered_at")?,
            address: f.obj.get("address").and_then(Value::as_str).map(str::to_owned),
            expires_in: f.int("expires_in")?,
            expired: f.flag("expired"),
            transferred: f.flag("transferred"),
        })
    }
}

impl HistoryEntry {
    pub(crate) fn from_json(method: &str, v: &Value, vt: ValueType) -> Result<Self, NvsError> {
        let f = Fields::new(method, v)?;
        let value = match f.obj.get("value").and_then(Value::as_str) {
            Some(s) => Some(vt.decode(method, s)?),
            None => None,
        };
        Ok(HistoryEntry {
            txid: f.str("txid")?.to_owned(),
            time: f.int("time")?,
            height: f.int("height")?,
            address: f.str("address")?.to_owned(),
            vout: f.int("vout")?.try_into().map_err(|_| f.bad("vout", "a small integer"))?,
            address_is_mine: f.flag("address_is_mine"),
            operation: f.str("operation")?.to_owned(),
            days_added: f.opt_int("days_added")?,
            value,
        })
    }
}
