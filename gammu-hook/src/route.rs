//! The routing table: which renter a received SMS belongs to, by the SIM that got
//! it (gammu's PhoneID, or the modem's name), with the renter's keys and inbox.

use ed25519_dalek::VerifyingKey;
use ness_core::envelope::{KeyRole, Keyfile, b64u, box_public, sign_public};
use x25519_dalek::PublicKey as BoxPublic;

use crate::config::RouteSection;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Option<String>,
    pub phone_ids: Vec<String>,
    /// Envelopes are sealed for this key.
    pub renter_box: BoxPublic,
    /// Receipts must be signed by this key.
    pub renter_sign: VerifyingKey,
    pub inbox_url: String,
    pub envelope: u8,
    /// The SOCKS5 proxy URL, if any.
    pub proxy: Option<String>,
    /// What an envelope was sealed for: if this changes (the config was edited), a
    /// stored envelope is sealed again.
    pub key: String,
}

#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    pub fn from_config(sections: &[RouteSection], default_proxy: Option<&str>) -> Result<Routes, String> {
        let mut routes = Vec::new();
        for (i, r) in sections.iter().enumerate() {
            let n = i + 1;
            let (box_bytes, sign_bytes) = match &r.renter_keyfile {
                Some(path) => {
                    let kf = Keyfile::read(path).map_err(|e| format!("route {n}: {e}"))?;
                    (
                        kf.key(KeyRole::BoxPublic, None).map_err(|e| format!("route {n}: {e}"))?,
                        kf.key(KeyRole::SignPublic, None).map_err(|e| format!("route {n}: {e}"))?,
                    )
                }
                None => {
                    let decode = |what: &str, v: &Option<String>| {
                        b64u::decode(v.as_deref().unwrap_or("")).map_err(|e| format!("route {n}: {what}: {e}"))
                    };
                    (decode("renter_box_pub", &r.renter_box_pub)?, decode("renter_sign_pub", &r.renter_sign_pub)?)
                }
            };
            let renter_box = box_public(&box_bytes).map_err(|e| format!("route {n}: renter box key: {e}"))?;
            let renter_sign = sign_public(&sign_bytes).map_err(|e| format!("route {n}: renter signing key: {e}"))?;
            let proxy = match r.socks5.as_deref().or(default_proxy) {
                None | Some("none" | "") => None,
                Some(p) if p.starts_with("socks5://") || p.starts_with("socks5h://") => Some(p.to_owned()),
                Some(p) => return Err(format!("route {n}: socks5 must be socks5://host:port or socks5h://host:port, not {p:?}")),
            };
            let key = format!("{}|{}|v{}", b64u::encode(renter_box.as_bytes()), r.inbox_url, r.envelope);
            routes.push(Route {
                name: r.name.clone(),
                phone_ids: r.phone_ids.clone(),
                renter_box,
                renter_sign,
                inbox_url: r.inbox_url.clone(),
                envelope: r.envelope,
                proxy,
                key,
            });
        }
        Ok(Routes(routes))
    }

    /// The route for a SIM: an exact phone id first, then a `"*"` route.
    pub fn find(&self, phone_id: &str) -> Option<&Route> {
        self.0
            .iter()
            .find(|r| r.phone_ids.iter().any(|p| p == phone_id))
            .or_else(|| self.0.iter().find(|r| r.phone_ids.iter().any(|p| p == "*")))
    }

    /// The route named `name` (for `on_sms`'s `renter`).
    pub fn named(&self, name: &str) -> Option<&Route> {
        self.0.iter().find(|r| r.name.as_deref() == Some(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(ids: &[&str], url: &str) -> RouteSection {
        let b = BoxPublic::from(&x25519_dalek::StaticSecret::from([1; 32]));
        let s = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        RouteSection {
            name: None,
            phone_ids: ids.iter().map(|s| s.to_string()).collect(),
            renter_keyfile: None,
            renter_box_pub: Some(b64u::encode(b.as_bytes())),
            renter_sign_pub: Some(b64u::encode(s.as_bytes())),
            inbox_url: url.into(),
            envelope: 2,
            socks5: None,
        }
    }

    #[test]
    fn exact_ids_win_over_the_wildcard() {
        let routes = Routes::from_config(&[section(&["*"], "http://any/"), section(&["sim1"], "http://one/")], Some("socks5h://127.0.0.1:1080")).unwrap();
        assert_eq!(routes.find("sim1").unwrap().inbox_url, "http://one/");
        assert_eq!(routes.find("sim9").unwrap().inbox_url, "http://any/");
        assert_eq!(routes.find("sim1").unwrap().proxy.as_deref(), Some("socks5h://127.0.0.1:1080"));
        let only = Routes::from_config(&[section(&["sim1"], "http://one/")], None).unwrap();
        assert!(only.find("sim2").is_none());
    }

    #[test]
    fn bad_keys_and_proxies_are_named() {
        let mut s = section(&["a"], "http://x/");
        s.renter_box_pub = Some("short".into());
        assert!(Routes::from_config(&[s], None).unwrap_err().contains("route 1"));
        let mut s = section(&["a"], "http://x/");
        s.socks5 = Some("http://proxy:3128".into());
        assert!(Routes::from_config(&[s], None).unwrap_err().contains("socks5"));
    }
}
