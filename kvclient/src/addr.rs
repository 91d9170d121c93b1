//! Server addresses as users type them: `host`, `host:port` (port 80 by default, as in the book)
//! or a full `http://host:port` URL, alone or in a comma-separated list. Servers speak plain
//! HTTP inside the cluster, so the client carries no TLS stack.

use crate::error::Error;

/// The port the book's servers listen on.
pub const DEFAULT_PORT: u16 = 80;

/// Turns one address into a base URL without a trailing slash, e.g. `http://server-0.server:80`.
pub fn parse_server(text: &str) -> Result<String, Error> {
    let bad = |reason: &str| Error::InvalidAddress {
        addr: text.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad("empty address"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad("only http:// is supported: kvservers speak plain HTTP"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("expected host[:port], without a path"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the address are not supported"));
    }
    let port = url.port().unwrap_or(DEFAULT_PORT);
    Ok(format!("http://{host}:{port}"))
}

/// Parses `SRV_1[:PORT],SRV_2[:PORT],...`; an empty entry (e.g. a trailing comma) is an error.
pub fn parse_server_list(text: &str) -> Result<Vec<String>, Error> {
    text.split(',').map(parse_server).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_addresses_default_to_port_80() {
        assert_eq!(
            parse_server_list("server-0.server,server-1.server:8080").unwrap(),
            vec!["http://server-0.server:80", "http://server-1.server:8080"]
        );
        assert_eq!(
            parse_server("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(parse_server("[::1]:81").unwrap(), "http://[::1]:81");
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in [
            "",
            "a,,b",
            "a,",
            "host:notaport",
            "host:99999",
            "ftp://x",
            "https://x",
            "x/path",
            "u:p@host",
            "a b",
        ] {
            assert!(parse_server_list(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
