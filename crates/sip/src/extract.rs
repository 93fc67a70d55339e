//! Reading what Permanence needs out of rsipstack messages.
//!
//! Header values are read as text and parsed with our own tolerant helpers
//! (the intake splitter), so one odd header never makes a whole request
//! unusable.

use crate::intake::{entry_param, entry_uri, split_entries, IntakeHeaders};
use crate::registrar::{ContactEntry, ContactField, RegisterRequest};
use permanence_types::Transport;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Headers, Request};
use std::net::SocketAddr;

/// Every value of header `name` (canonical name, case-insensitive), one
/// per header line, in message order.
pub fn header_values<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
        .collect()
}

/// The first value of header `name`.
pub fn header_value<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
}

/// The user part of a SIP URI (`sip:alice@host;x` → `alice`), if any.
pub fn uri_user(uri: &str) -> Option<&str> {
    let u = if uri.contains('<') {
        entry_uri(uri)
    } else {
        uri.trim()
    };
    let rest = u
        .strip_prefix("sip:")
        .or_else(|| u.strip_prefix("sips:"))
        .or_else(|| u.strip_prefix("SIP:"))?;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then_some(user)
}

/// The transport a request came over, from its top Via (`SIP/2.0/TCP`);
/// UDP when the Via is missing or names a transport we do not serve.
pub fn via_transport(req: &Request) -> Transport {
    req.top_via_header()
        .ok()
        .and_then(|v| {
            let proto = v.value().split_whitespace().next()?;
            proto.rsplit('/').next().and_then(Transport::parse)
        })
        .unwrap_or_default()
}

/// The CSeq number of a request.
pub fn cseq_number(req: &Request) -> Option<u32> {
    req.cseq_header().ok().and_then(|c| c.seq().ok())
}

/// The Call-ID of a request.
pub fn call_id(req: &Request) -> Option<String> {
    req.call_id_header().ok().map(|c| c.value().to_string())
}

/// Builds the registrar's view of a REGISTER.
pub fn register_request(
    req: &Request,
    source: SocketAddr,
    transport: Transport,
) -> Result<RegisterRequest, &'static str> {
    let to = header_value(&req.headers, "To").ok_or("missing To")?;
    let to_user = uri_user(to).ok_or("To has no user part")?.to_string();
    let expires_header = match header_value(&req.headers, "Expires") {
        None => None,
        Some(v) => Some(v.trim().parse::<u32>().map_err(|_| "bad Expires")?),
    };
    let values = header_values(&req.headers, "Contact");
    let contacts = if values.is_empty() {
        ContactField::None
    } else if values.len() == 1 && values[0].trim() == "*" {
        ContactField::Star
    } else {
        let mut list = Vec::new();
        for v in values {
            for e in split_entries(v) {
                if e.trim() == "*" {
                    return Err("Contact: * mixed with other contacts");
                }
                let uri = entry_uri(e).trim();
                if uri.is_empty() {
                    return Err("empty Contact");
                }
                let expires = match entry_param(e, "expires") {
                    None => None,
                    Some(x) => Some(x.parse::<u32>().map_err(|_| "bad Contact expires")?),
                };
                list.push(ContactEntry {
                    uri: uri.to_string(),
                    expires,
                    instance: entry_param(e, "+sip.instance").map(str::to_string),
                });
            }
        }
        ContactField::List(list)
    };
    Ok(RegisterRequest {
        to_user,
        authorization: header_value(&req.headers, "Authorization").map(str::to_string),
        contacts,
        expires_header,
        call_id: call_id(req).ok_or("missing Call-ID")?,
        cseq: cseq_number(req).ok_or("bad CSeq")?,
        source,
        transport,
        user_agent: header_value(&req.headers, "User-Agent").map(str::to_string),
    })
}

/// The headers intake reads, borrowed from `req`; `request_uri` is the
/// Request-URI rendered as text by the caller.
pub fn intake_view<'a>(req: &'a Request, request_uri: &'a str) -> IntakeHeaders<'a> {
    IntakeHeaders {
        history_info: header_values(&req.headers, "History-Info"),
        diversion: header_values(&req.headers, "Diversion"),
        request_uri,
        to: header_value(&req.headers, "To").unwrap_or(""),
    }
}

/// The caller's number or user, from P-Asserted-Identity or From, as
/// written (mask it before logging).
pub fn caller_id(req: &Request) -> String {
    header_value(&req.headers, "P-Asserted-Identity")
        .or_else(|| header_value(&req.headers, "From"))
        .map(|v| entry_uri(v).to_string())
        .unwrap_or_default()
}

/// The Call-ID named by the `Replaces` header parameter of a Refer-To
/// value (RFC 3891, escaped in the URI: `<sip:x@h?Replaces=id%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>`),
/// unescaped; `None` without one. An attended transfer's REFER carries it.
pub fn refer_replaces_call_id(refer_to: &str) -> Option<String> {
    let lower = refer_to.to_ascii_lowercase();
    let start = lower.find("replaces=")? + "replaces=".len();
    let rest = refer_to.get(start..)?;
    let end = rest.find(['>', '&']).unwrap_or(rest.len());
    let value = percent_decode(rest.get(..end)?)?;
    let id = value.split(';').next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// `%XX` escapes decoded (a URI's user part or header parameter); `None`
/// for a broken escape or non-UTF-8 bytes.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::SipMessage;

    fn parse(raw: &str) -> Request {
        match SipMessage::try_from(raw) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn register_fields() {
        let r = parse(concat!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n",
            "From: <sip:alice@127.0.0.1>;tag=1\r\n",
            "To: \"Alice\" <sip:alice@127.0.0.1>\r\n",
            "Call-ID: reg1\r\n",
            "CSeq: 7 REGISTER\r\n",
            "m: <sip:alice@127.0.0.1:5070;transport=udp>;expires=120;+sip.instance=\"<urn:uuid:1>\", <sip:alice@10.0.0.1>\r\n",
            "Expires: 300\r\n",
            "Content-Length: 0\r\n\r\n"
        ));
        let rr = register_request(&r, "127.0.0.1:5070".parse().expect("addr"), Transport::Udp)
            .expect("ok");
        assert_eq!(rr.to_user, "alice");
        assert_eq!(rr.cseq, 7);
        assert_eq!(rr.expires_header, Some(300));
        let ContactField::List(l) = rr.contacts else {
            panic!("list")
        };
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].uri, "sip:alice@127.0.0.1:5070;transport=udp");
        assert_eq!(l[0].expires, Some(120));
        assert_eq!(l[0].instance.as_deref(), Some("<urn:uuid:1>"));
        assert_eq!(l[1].expires, None);
    }

    #[test]
    fn star_contact() {
        let r = parse(concat!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n",
            "From: <sip:alice@127.0.0.1>;tag=1\r\n",
            "To: <sip:alice@127.0.0.1>\r\n",
            "Call-ID: reg1\r\n",
            "CSeq: 8 REGISTER\r\n",
            "Contact: *\r\n",
            "Expires: 0\r\n",
            "Content-Length: 0\r\n\r\n"
        ));
        let rr = register_request(&r, "127.0.0.1:5070".parse().expect("addr"), Transport::Udp)
            .expect("ok");
        assert_eq!(rr.contacts, ContactField::Star);
        assert_eq!(rr.expires_header, Some(0));
    }

    #[test]
    fn users() {
        assert_eq!(uri_user("<sip:alice@h;transport=tcp>"), Some("alice"));
        assert_eq!(uri_user("sip:+33450000001;npdi@h"), Some("+33450000001"));
        assert_eq!(uri_user("sip:h"), None);
        assert_eq!(uri_user("tel:+331"), None);
    }

    #[test]
    fn replaces_in_refer_to() {
        assert_eq!(
            refer_replaces_call_id(
                "<sip:+33611223344@127.0.0.1?Replaces=consult-1%40host%3Bto-tag%3Dab%3Bfrom-tag%3Dcd>"
            )
            .as_deref(),
            Some("consult-1@host")
        );
        assert_eq!(
            refer_replaces_call_id("<sip:x@h?replaces=abc;to-tag=1&other=2>").as_deref(),
            Some("abc")
        );
        assert_eq!(refer_replaces_call_id("<sip:1@127.0.0.1>"), None);
        assert_eq!(refer_replaces_call_id("<sip:x@h?Replaces=%4>"), None);
        assert_eq!(refer_replaces_call_id("<sip:x@h?Replaces=>"), None);
        assert_eq!(refer_replaces_call_id("Replaces=%C3%28"), None);
    }
}
