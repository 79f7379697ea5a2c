//! From an answer to the targets a SIP proxy forks to.
//!
//! RFC 3403 §4.1 and RFC 6116 §3.4: a client takes the NAPTRs of the lowest
//! order that it can use (here: that offer the service and whose regexp matched
//! the number) and never looks at a higher order while a lower one is usable —
//! order groups are not a failover list. Within the group, preference ranks the
//! targets. Kamailio expresses the ranking as q values: like the stock `enum`
//! module the first target gets q = 0.990 and q drops by 0.010 at each worse
//! preference (equal preferences share a q, so tm forks to them in parallel);
//! unlike it, targets from higher order groups are never added.

use super::answer::EnumAnswer;

/// q of the best target, in thousandths (Kamailio's qvalue_t).
pub const FIRST_Q: i32 = 990;
/// q drop per worse preference.
pub const Q_STEP: i32 = 10;

/// One fork target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub uri: String,
    /// Thousandths, as Kamailio's qvalue_t.
    pub q: i32,
    pub order: u16,
    pub preference: u16,
}

/// Longest URI a target may have (Kamailio's MAX_URI_SIZE).
pub const MAX_URI: usize = 1024;

/// Records are written by anyone: a URI that would corrupt a request line
/// (blanks, control or non-ASCII bytes, no scheme, too long) is not a target.
pub fn usable_uri(uri: &str) -> bool {
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    scheme_ok && uri.len() <= MAX_URI && uri.bytes().all(|b| b.is_ascii_graphic())
}

/// The targets for `service` (see `Naptr::offers`), best first.
pub fn targets(answer: &EnumAnswer, service: &str) -> Vec<Target> {
    let mut routes = answer.routes(service).filter(|n| n.uri.as_deref().is_some_and(usable_uri)).peekable();
    let Some(order) = routes.peek().map(|n| n.order) else { return Vec::new() };
    let mut out: Vec<Target> = Vec::new();
    for n in routes.take_while(|n| n.order == order) {
        let q = match out.last() {
            None => FIRST_Q,
            Some(prev) if prev.preference == n.preference => prev.q,
            Some(prev) => (prev.q - Q_STEP).max(0),
        };
        let uri = n.uri.clone().unwrap_or_default();
        out.push(Target { uri, q, order: n.order, preference: n.preference });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rows: &[(u16, u16, &str, &str)]) -> EnumAnswer {
        EnumAnswer::from_rows(rows)
    }

    #[test]
    fn lowest_usable_order_group_only_with_q_by_preference() {
        let a = answer(&[
            (200, 10, "E2U+sip", "!^.*$!sip:later@x!"),
            (100, 20, "E2U+sip", "!^.*$!sip:b@x!"),
            (100, 10, "E2U+sip", "!^.*$!sip:a@x!"),
            (100, 20, "E2U+sip", "!^.*$!sip:b2@x!"),
            (100, 30, "E2U+sip", "!^.*$!sip:c@x!"),
        ]);
        let t = targets(&a, "sip");
        let got: Vec<(&str, i32)> = t.iter().map(|t| (t.uri.as_str(), t.q)).collect();
        assert_eq!(got, [("sip:a@x", 990), ("sip:b@x", 980), ("sip:b2@x", 980), ("sip:c@x", 970)]);
    }

    #[test]
    fn unusable_lower_orders_are_skipped() {
        let a = answer(&[
            (10, 10, "E2U+iax2", "!^.*$!iax2:a@x!"),
            (50, 10, "E2U+sip", "!^\\+44(.*)$!sip:\\1@uk!"), // does not match +1…
            (100, 10, "E2U+sip", "!^\\+1(.*)$!sip:\\1@us!"),
            (200, 10, "E2U+sip", "!^.*$!sip:z@x!"),
        ]);
        assert_eq!(targets(&a, "sip"), [Target { uri: "sip:5551234567@us".into(), q: 990, order: 100, preference: 10 }]);
        assert_eq!(targets(&a, "iax2")[0].uri, "iax2:a@x");
        assert!(targets(&a, "h323").is_empty());
    }

    #[test]
    fn hostile_uris_are_not_targets() {
        // A regexp cannot hold a blank (emcdns reads up to it), but the privatenumer
        // layout can; and any byte can come from a back-reference.
        let a = answer(&[
            (10, 10, "E2U+sip", "!^.*$!noscheme!"),
            (10, 20, "E2U+sip", "!^.*$!sip:ok@x!"),
        ]);
        assert!(usable_uri("sip:ok@x"));
        for bad in ["sip:a b@x", "sip:", "sip:a\r\nVia: x", "sip:\u{e9}@x", ":x"] {
            assert!(!usable_uri(bad), "{bad:?}");
        }
        assert!(!usable_uri(&format!("sip:{}", "a".repeat(2000))));
        let t = targets(&a, "sip");
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!((t[0].uri.as_str(), t[0].q), ("sip:ok@x", FIRST_Q));
    }
}
