//! Property tests for the parsers that read untrusted input (dialled numbers, NVS
//! values anybody can write, NAPTR regexps): they never panic, and what the suite
//! writes, it reads back.

use ness_core::enumer::privatenumer::parse_privatenumer_value;
use ness_core::enumer::registry::{e2u_lines_for_uris, enumer_value};
use ness_core::enumer::trust::Srl;
use ness_core::enumer::{E164, NaptrRegexp, parse_enumer_name, parse_enumer_value};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn numbers_survive_any_formatting(digits in "[1-9][0-9]{1,14}", seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just("(")], 15), plus in any::<bool>()) {
        let mut s = String::new();
        if plus { s.push('+'); }
        for (i, d) in digits.chars().enumerate() {
            s.push(d);
            s.push_str(seps[i % seps.len()]);
        }
        let n = E164::parse(&s).unwrap();
        prop_assert_eq!(n.digits(), digits.as_str());
        prop_assert_eq!(parse_enumer_name(&n.enumer_name(3)), Some((n.clone(), 3)));
        prop_assert_eq!(ness_core::enumer::parse_privatenumer_name(&n.privatenumer_name()), Some(n));
    }

    #[test]
    fn number_parsing_never_panics(s in "\\PC{0,40}") {
        let _ = E164::parse(&s);
    }

    #[test]
    fn record_values_never_panic(s in "(\\PC|[\\n\\r|!=,])*") {
        let r = parse_enumer_value(&s);
        for n in &r.naptrs {
            if let Ok(re) = NaptrRegexp::parse(&n.regexp) {
                let _ = re.apply("+15551234567");
            }
        }
        let _ = parse_privatenumer_value(&s);
        let _ = Srl::from_verifier_value(&s);
    }

    #[test]
    fn regexp_fields_never_panic(s in "\\PC{0,60}", aus in "\\+[0-9]{1,15}") {
        if let Ok(re) = NaptrRegexp::parse(&s) {
            let _ = re.apply(&aus);
            let _ = re.replacement_text();
        }
    }

    #[test]
    fn dialplan_values_never_split_arguments(args in "\\+?[0-9]{3,15}(,[a-zA-Z+:]{0,8}(,[cu]{0,2}(,[0-9]{0,2})?)?)?", replacement in "[ -~]{0,40}") {
        use ness_core::enumer::dialplan::{self, LookupArgs};
        let _ = dialplan::parse_query_args(&args);
        let _ = dialplan::parse_result_args(&args);
        let Ok(parsed) = LookupArgs::parse(&args) else { return Ok(()) };
        let Ok(number) = E164::parse(&parsed.number) else { return Ok(()) };
        let Ok(re) = NaptrRegexp::parse(&format!("!^.*$!{}!", replacement.replace('!', ""))) else { return Ok(()) };
        let mut answer = ness_core::enumer::EnumAnswer::empty(number.clone());
        answer.naptrs.push(ness_core::enumer::Naptr {
            order: 1, preference: 1, flags: "u".into(), service: "E2U+sip".into(),
            uri: re.apply(&number.aus()), regexp: re, ttl: 60, record: 0,
        });
        let value = dialplan::lookup_value(&answer, &parsed);
        prop_assert!(!value.contains([',', '&', '|', '(', ')', '$', '"', '\'', '\\', ' ']), "{:?}", value);
    }

    #[test]
    fn what_we_write_we_read(hosts in proptest::collection::vec("[a-z][a-z0-9.-]{0,20}", 1..6), ttl in proptest::option::of(0u32..100000)) {
        let uris: Vec<String> = hosts.iter().map(|h| format!("sip:user@{h}")).collect();
        let lines = e2u_lines_for_uris(&uris).unwrap();
        let value = enumer_value(&lines, Some("SIG=ver:enum|AAAA"), ttl);
        let parsed = parse_enumer_value(&value);
        prop_assert_eq!(parsed.naptrs.len(), uris.len());
        prop_assert_eq!(parsed.ttl, ttl);
        for (line, uri) in parsed.naptrs.iter().zip(&uris) {
            let re = NaptrRegexp::parse(&line.regexp).unwrap();
            prop_assert_eq!(re.apply("+15551234567"), Some(uri.clone()));
        }
    }

    #[test]
    fn srl_names_follow_the_template(nbits in 0u32..40, width in 0usize..6, name in "enum:[0-9]{2,15}:[0-9]{1,2}") {
        let template = if width == 0 { "srl:x-%x".to_owned() } else { format!("srl:x-%0{width}x") };
        let srl = Srl::from_verifier_value(&format!("SRL={nbits}|{template}")).unwrap();
        let list = srl.record_name(&name);
        let hexpart = list.strip_prefix("srl:x-").unwrap();
        prop_assert!(hexpart.len() >= width);
        let bucket = u32::from_str_radix(hexpart, 16).unwrap();
        prop_assert!(u64::from(bucket) < (1u64 << nbits.min(30)));
    }

    #[test]
    fn trunk_bytes_never_panic_and_frames_re_encode(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        use tokio_util::codec::{Decoder, Encoder};
        let mut src = bytes::BytesMut::from(&data[..]);
        let mut consumed = 0;
        while let Ok(Some(f)) = ness_core::trunk::FrameCodec.decode(&mut src) {
            let mut again = bytes::BytesMut::new();
            ness_core::trunk::FrameCodec.encode(f, &mut again).unwrap();
            prop_assert_eq!(&again[..], &data[consumed..consumed + again.len()]);
            consumed += again.len();
        }
        if let Ok(f) = ness_core::trunk::Frame::from_datagram(&data) {
            prop_assert_eq!(f.to_datagram().unwrap(), data);
        }
    }
}
