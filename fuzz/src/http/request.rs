//! Fuzz input to requests: the input is one or more HTTP/1.1 requests as they would arrive on
//! the socket (request line, headers, blank line, body), separated by [`SEPARATOR`] lines, so
//! seeds are readable, mutations stay close to what a client can send, and one input can hold a
//! sequence (an import, then a write to the same key). Parts that are not a request a server
//! would accept are skipped. The pseudo-header `x-fuzz-server` names the server a request goes
//! to (`server::Kind`, default `plain`); it is removed before the request is sent.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Request};
use percent_encoding::percent_decode_str;

use super::server::{Kind, SERVER_HEADER};

/// The most headers read from one request (hyper's default limit is 100).
const MAX_HEADERS: usize = 64;
/// Ends one request (and its body) and starts the next.
pub const SEPARATOR: &[u8] = b"\n--next--\n";
/// The most requests taken from one input.
const MAX_REQUESTS: usize = 8;

/// A request and the server it goes to.
pub struct Sent {
    pub server: Kind,
    pub request: Request<Bytes>,
}

/// The requests in `data`, in order.
pub fn parse_all(data: &[u8]) -> Vec<Sent> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < MAX_REQUESTS {
        match find(rest, SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts.into_iter().filter_map(parse).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses `data`; `None` when it is not a complete request head, not a valid `http::Request`
/// or names no known server.
pub fn parse(data: &[u8]) -> Option<Sent> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(body_at) = head.parse(data).ok()? else {
        return None;
    };
    let method = Method::from_bytes(head.method?.as_bytes()).ok()?;
    // Only origin-form targets reach a router; hyper turns absolute-form ones into a full Uri.
    let target = head.path?;
    if !target.starts_with('/') {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(target);
    let mut server = Kind::Plain;
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == SERVER_HEADER {
            server = Kind::from_name(h.value)?;
            continue;
        }
        // Framing is the server's business: the body below is exactly what follows the head.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        builder = builder.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let body = &data[body_at..];
    if !body.is_empty() {
        builder = builder.header(CONTENT_LENGTH, body.len());
    }
    let mut request = builder.body(Bytes::copy_from_slice(body)).ok()?;
    disarm_topology_pushes(&mut request);
    Some(Sent { server, request })
}

/// A topology the fuzzer could push would name peers, and the server would then forward to
/// them: off the loopback, and for every later input. So writes to any path that mentions a
/// topology go without the admin token (and are answered 401).
fn disarm_topology_pushes<B>(request: &mut Request<B>) {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return;
    }
    let path: Vec<u8> = percent_decode_str(request.uri().path()).collect();
    if path
        .to_ascii_lowercase()
        .windows(8)
        .any(|w| w == b"topology")
    {
        request.headers_mut().remove(AUTHORIZATION);
    }
}
