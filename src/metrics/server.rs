//! A minimal HTTP/1.1 responder for `/metrics`, `/healthz` and `/readyz`.
//!
//! One thread, one connection at a time, `Connection: close`: scrapes and
//! probes are a few requests a minute, and a responder this small has no
//! parser worth attacking (only the request line is looked at; the head is
//! bounded in size and time).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::{HEALTH, METRICS};

/// Why the metrics endpoint is not served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("metrics listener on {addr}: {source}")]
    Bind {
        /// `--metrics-addr`.
        addr: String,
        /// What the socket said.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (HOST:PORT; port 0 picks one) and serves in a background
/// thread for the life of the process. Returns the bound address.
pub fn serve(addr: &str) -> Result<SocketAddr, ServerError> {
    let bind_err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    METRICS
        .process_start_time_seconds
        .set(now.map_or(0.0, |d| d.as_secs_f64().floor()));
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = respond(stream) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
        })
        .map_err(bind_err)?;
    tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
    Ok(local)
}

/// Status line and body for a request path.
fn route(path: &str) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => {
            METRICS.ready.set(if HEALTH.readiness().is_ok() { 1.0 } else { 0.0 });
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", METRICS.render())
        }
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => match HEALTH.readiness() {
            Ok(()) => ("200 OK", TEXT, "ready\n".into()),
            Err(why) => ("503 Service Unavailable", TEXT, format!("{why}\n")),
        },
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

fn respond(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // At most 8 KiB of request head: anything longer is not a scrape.
    let mut reader = BufReader::new(std::io::Read::take(&stream, 8192));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The headers are read to their end and ignored: closing with unread
    // input would reset the connection under the client's feet.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && header.trim_end() != "" {
        header.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = if method == "GET" || method == "HEAD" {
        route(path)
    } else {
        ("405 Method Not Allowed", "text/plain", "GET only\n".to_string())
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}
