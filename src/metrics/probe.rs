//! A tiny HTTP GET client, for `cdr-to-redpanda healthcheck`: the runtime
//! image has no curl, and the Docker HEALTHCHECK needs something to call.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health probe got no status.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not a plain http URL.
    #[error("expected a URL like http://HOST:PORT/PATH, got {0:?}")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL probed.
        url: String,
        /// What the socket said.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not HTTP.
    #[error("{url}: not an HTTP response")]
    Response {
        /// The URL probed.
        url: String,
    },
}

/// GETs `url` (plain http only) and returns the status code and body.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Url(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ProbeError::Url(url.to_string()));
    }
    let io = |source| ProbeError::Io {
        url: url.to_string(),
        source,
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| ProbeError::Url(url.to_string()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let bad = || ProbeError::Response { url: url.to_string() };
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_status_and_body_from_the_metrics_server() {
        let addr = crate::metrics::server::serve("127.0.0.1:0").unwrap();
        let (status, body) = get(&format!("http://{addr}/healthz"), Duration::from_secs(5)).unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _) = get(&format!("http://{addr}/readyz"), Duration::from_secs(5)).unwrap();
        assert_eq!(status, 503, "not started: not ready");
        let (status, body) = get(&format!("http://{addr}/metrics"), Duration::from_secs(5)).unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("# TYPE cdr_chunk_seconds histogram"));
        let (status, _) = get(&format!("http://{addr}/nope"), Duration::from_secs(5)).unwrap();
        assert_eq!(status, 404);
        assert!(matches!(
            get("https://x/", Duration::from_secs(1)),
            Err(ProbeError::Url(_))
        ));
    }
}
