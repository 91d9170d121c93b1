//! Server addresses as users type them: `host`, `host:port` (port 80 by default, as in the book)
//! or a full `http://host:port` or `https://host:port` URL (443 by default), alone or in a
//! comma-separated list. A server behind `--tls-cert-file` needs `https://`, and the client the
//! CA that signed its certificate (`ClientConfig::ca_pem`).

use crate::error::Error;

/// The port the book's servers listen on.
pub const DEFAULT_PORT: u16 = 80;

/// The port an `https://` address without one means.
pub const DEFAULT_TLS_PORT: u16 = 443;

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
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(bad("only http:// and https:// are supported"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("expected host[:port], without a path"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the address are not supported"));
    }
    // `Url` drops a scheme's default port (443 for https): put it back, so the base is explicit.
    let port = url.port().unwrap_or(if scheme == "https" {
        DEFAULT_TLS_PORT
    } else {
        DEFAULT_PORT
    });
    Ok(format!("{scheme}://{host}:{port}"))
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
        assert_eq!(
            parse_server("https://127.0.0.1:8443").unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(parse_server("https://s.ns").unwrap(), "https://s.ns:443");
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
            "https://x/path",
            "x/path",
            "u:p@host",
            "a b",
        ] {
            assert!(parse_server_list(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
