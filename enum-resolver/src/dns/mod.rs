//! The DNS face: NAPTR answers for `<reversed digits>.e164.arpa.` (RFC 6116) and the
//! emcdns-style `<reversed digits>.enum.` from the same resolver as the HTTP API.
//!
//! Answers are authoritative. A number with records gets its NAPTRs (other types:
//! NOERROR without data); a number without records, or a name that is not a
//! number, gets NXDOMAIN with the zone's SOA for negative caching; names outside
//! the configured zones are REFUSED; a node failure with nothing cached is
//! SERVFAIL. EDNS(0) is honoured (payload size, BADVERS); an answer too big for
//! the client's UDP payload is cut with the TC bit so the client retries over TCP.
//!
//! [`EnumDns`] builds every answer with hickory; TCP is served by hickory-server,
//! UDP by [`udp`], a front that keeps the encoded answers of cache hits and
//! replays them (new ID, flags and question case) without re-encoding.

pub mod query_key;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, Metadata, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{NAPTR, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ness_core::enumer::{AnswerSource, E164, EnumAnswer, NameSource, Resolver};
use tokio::time::Instant;

use crate::metrics::{DnsLabels, Metrics};

/// How long a REFUSED or not-a-number NXDOMAIN may be replayed (they never change).
const STATIC_ANSWER_SECS: u64 = 60;

struct Zone {
    name: LowerName,
    labels: usize,
    soa: Record,
}

pub struct EnumDns<S> {
    resolver: Arc<Resolver<S>>,
    zones: Vec<Zone>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid DNS zone {zone:?}: {detail}")]
pub struct ZoneError {
    zone: String,
    detail: String,
}

/// What an answer is made of, before encoding.
struct Answer<'a> {
    rcode: ResponseCode,
    records: Vec<Record>,
    soa: Option<&'a Record>,
    /// Until when the same question gets the same answer (None: do not replay).
    same_until: Option<Instant>,
}

impl<S: NameSource + 'static> EnumDns<S> {
    pub fn new(resolver: Arc<Resolver<S>>, zones: &[String], metrics: Arc<Metrics>) -> Result<Self, ZoneError> {
        let negative = resolver.config().negative_ttl.as_secs() as u32;
        let zones = zones
            .iter()
            .map(|z| {
                let name = Name::from_ascii(z).map_err(|e| ZoneError { zone: z.clone(), detail: e.to_string() })?;
                let mname = Name::from_ascii("ns.").expect("static name").append_domain(&name).unwrap_or_else(|_| name.clone());
                let rname = Name::from_ascii("hostmaster.").expect("static name").append_domain(&name).unwrap_or_else(|_| name.clone());
                let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, negative);
                Ok(Zone {
                    labels: usize::from(name.num_labels()),
                    soa: Record::from_rdata(name.clone(), negative, RData::SOA(soa)),
                    name: LowerName::new(&name),
                })
            })
            .collect::<Result<_, ZoneError>>()?;
        Ok(EnumDns { resolver, zones, metrics })
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn count(&self, protocol: Protocol, rcode: ResponseCode) {
        let proto = if protocol == Protocol::Udp { "udp" } else { "tcp" };
        self.metrics.dns_queries.get_or_create(&DnsLabels { proto, rcode: rcode_name(rcode) }).inc();
    }

    /// The answer to one question.
    async fn answer(&self, qname: &LowerName, qtype: RecordType, qclass: DNSClass) -> Answer<'_> {
        let static_until = Some(Instant::now() + std::time::Duration::from_secs(STATIC_ANSWER_SECS));
        let Some(zone) = self.zones.iter().find(|z| z.name.zone_of(qname)) else {
            return Answer { rcode: ResponseCode::Refused, records: Vec::new(), soa: None, same_until: static_until };
        };
        if qclass != DNSClass::IN && qclass != DNSClass::ANY {
            return Answer { rcode: ResponseCode::Refused, records: Vec::new(), soa: None, same_until: static_until };
        }
        let name: &Name = qname;
        let own = usize::from(name.num_labels()).saturating_sub(zone.labels);
        let labels: Vec<&[u8]> = name.iter().take(own).collect();
        let Some(number) = E164::from_reversed_labels(labels.into_iter()) else {
            return Answer { rcode: ResponseCode::NXDomain, records: Vec::new(), soa: Some(&zone.soa), same_until: static_until };
        };
        let looked = match self.resolver.lookup(&number).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("DNS lookup failed: {e}");
                return Answer { rcode: ResponseCode::ServFail, records: Vec::new(), soa: None, same_until: None };
            }
        };
        let same_until = match looked.source {
            AnswerSource::Stale(_) => None,
            _ => looked.fresh_until,
        };
        let answer = looked.answer;
        if !answer.is_found() {
            return Answer { rcode: ResponseCode::NXDomain, records: Vec::new(), soa: Some(&zone.soa), same_until };
        }
        if qtype != RecordType::NAPTR && qtype != RecordType::ANY {
            return Answer { rcode: ResponseCode::NoError, records: Vec::new(), soa: Some(&zone.soa), same_until };
        }
        Answer { rcode: ResponseCode::NoError, records: self.naptr_records(name, &answer), soa: None, same_until }
    }

    fn naptr_records(&self, owner: &Name, answer: &EnumAnswer) -> Vec<Record> {
        let cap = self.resolver.config().ttl_cap.as_secs().min(u64::from(u32::MAX)) as u32;
        answer
            .naptrs
            .iter()
            .map(|n| {
                let rdata = NAPTR::new(
                    n.order,
                    n.preference,
                    n.flags.as_bytes().into(),
                    n.service.as_bytes().into(),
                    n.regexp.as_str().as_bytes().into(),
                    Name::root(),
                );
                Record::from_rdata(owner.clone(), n.ttl.min(cap), RData::NAPTR(rdata))
            })
            .collect()
    }

    /// Answer a parsed request: the response header and records.
    async fn respond(&self, request: &Request) -> (Metadata, Option<Edns>, Answer<'_>) {
        let mut response_edns = None;
        if let Some(req) = request.edns.as_ref() {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            response_edns = Some(e);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let none = |rcode| Answer { rcode, records: Vec::new(), soa: None, same_until: None };
        let answer = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            none(ResponseCode::BADVERS)
        } else if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            none(ResponseCode::NotImp)
        } else {
            match request.request_info() {
                Ok(info) => {
                    let q = info.query;
                    let a = self.answer(q.name(), q.query_type(), q.query_class()).await;
                    metadata.authoritative = a.rcode != ResponseCode::Refused && a.rcode != ResponseCode::ServFail;
                    a
                }
                Err(_) => none(ResponseCode::FormErr),
            }
        };
        metadata.response_code = answer.rcode;
        (metadata, response_edns, answer)
    }

    /// Answer a raw UDP query: the encoded response (cut to the client's payload
    /// size, TC set if needed) and until when it may be replayed.
    pub async fn respond_udp(&self, raw: &[u8], src: SocketAddr) -> Option<(Vec<u8>, Option<Instant>)> {
        let request = Request::from_bytes(raw.to_vec(), src, Protocol::Udp).ok()?;
        let (metadata, edns, answer) = self.respond(&request).await;
        self.count(Protocol::Udp, answer.rcode);
        let max = edns.as_ref().map_or(512, Edns::max_payload);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answer.records.iter(),
            std::iter::empty(),
            answer.soa,
            std::iter::empty(),
        );
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        match response.destructive_emit(&mut encoder) {
            Ok(info) => {
                // A truncated answer is not replayed: the client comes back over TCP.
                let same_until = if info.truncation { None } else { answer.same_until };
                Some((bytes, same_until))
            }
            Err(e) => {
                tracing::warn!("cannot encode a DNS response: {e}");
                None
            }
        }
    }
}

fn rcode_name(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        _ => "OTHER",
    }
}

/// TCP (through hickory-server): the same answers.
#[async_trait::async_trait]
impl<S: NameSource + 'static> RequestHandler for EnumDns<S> {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let (metadata, edns, answer) = self.respond(request).await;
        self.count(request.protocol(), answer.rcode);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answer.records.iter(),
            std::iter::empty(),
            answer.soa,
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!("cannot send a DNS response: {e}");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata: m, counts: Default::default() })
            }
        }
    }
}
