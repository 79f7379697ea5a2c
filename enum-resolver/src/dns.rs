//! The DNS face: NAPTR answers for `<reversed digits>.e164.arpa.` (RFC 6116) and the
//! emcdns-style `<reversed digits>.enum.` from the same resolver as the HTTP API,
//! over UDP and TCP with hickory's server.
//!
//! Answers are authoritative. A number with records gets its NAPTRs (other types:
//! NOERROR without data); a number without records, or a name that is not a
//! number, gets NXDOMAIN with the zone's SOA for negative caching; names outside
//! the configured zones are REFUSED; a node failure with nothing cached is
//! SERVFAIL. EDNS(0) is honoured (payload size, BADVERS); an answer too big for
//! the client's UDP payload is cut with the TC bit so the client retries over TCP.

use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Metadata, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{NAPTR, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ness_core::enumer::{E164, EnumAnswer, NameSource, Resolver};

use crate::metrics::{DnsLabels, Metrics};

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

    fn count(&self, protocol: Protocol, rcode: ResponseCode) {
        let proto = if protocol == Protocol::Udp { "udp" } else { "tcp" };
        let rcode = match rcode {
            ResponseCode::NoError => "NOERROR",
            ResponseCode::NXDomain => "NXDOMAIN",
            ResponseCode::ServFail => "SERVFAIL",
            ResponseCode::Refused => "REFUSED",
            ResponseCode::FormErr => "FORMERR",
            ResponseCode::NotImp => "NOTIMP",
            _ => "OTHER",
        };
        self.metrics.dns_queries.get_or_create(&DnsLabels { proto, rcode }).inc();
    }

    /// Records and response code for one question.
    async fn answer(&self, qname: &LowerName, qtype: RecordType, qclass: DNSClass) -> (ResponseCode, Vec<Record>, Option<&Record>) {
        let Some(zone) = self.zones.iter().find(|z| z.name.zone_of(qname)) else {
            return (ResponseCode::Refused, Vec::new(), None);
        };
        if qclass != DNSClass::IN && qclass != DNSClass::ANY {
            return (ResponseCode::Refused, Vec::new(), None);
        }
        let name: &Name = qname;
        let own = usize::from(name.num_labels()).saturating_sub(zone.labels);
        let labels: Vec<&[u8]> = name.iter().take(own).collect();
        let Some(number) = E164::from_reversed_labels(labels.into_iter()) else {
            return (ResponseCode::NXDomain, Vec::new(), Some(&zone.soa));
        };
        let answer = match self.resolver.lookup(&number).await {
            Ok(l) => l.answer,
            Err(e) => {
                tracing::warn!("DNS lookup failed: {e}");
                return (ResponseCode::ServFail, Vec::new(), None);
            }
        };
        if !answer.is_found() {
            return (ResponseCode::NXDomain, Vec::new(), Some(&zone.soa));
        }
        if qtype != RecordType::NAPTR && qtype != RecordType::ANY {
            return (ResponseCode::NoError, Vec::new(), Some(&zone.soa));
        }
        (ResponseCode::NoError, self.naptr_records(name, &answer), None)
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
}

#[async_trait::async_trait]
impl<S: NameSource + 'static> RequestHandler for EnumDns<S> {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let mut response_edns = None;
        if let Some(req) = request.edns.as_ref() {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            response_edns = Some(e);
        }
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);

        let (rcode, answers, soa) = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            (ResponseCode::BADVERS, Vec::new(), None)
        } else if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            (ResponseCode::NotImp, Vec::new(), None)
        } else {
            match request.request_info() {
                Ok(info) => {
                    let q = info.query;
                    let (rcode, answers, soa) = self.answer(q.name(), q.query_type(), q.query_class()).await;
                    metadata.authoritative = rcode != ResponseCode::Refused && rcode != ResponseCode::ServFail;
                    (rcode, answers, soa)
                }
                Err(_) => (ResponseCode::FormErr, Vec::new(), None),
            }
        };
        metadata.response_code = rcode;
        self.count(request.protocol(), rcode);
        let response = builder.build(metadata, answers.iter(), std::iter::empty(), soa.into_iter(), std::iter::empty());
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!("cannot send a DNS response: {e}");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header { metadata: m, counts: Default::default() })
            }
        }
    }
}
