//! Why a broker's TLS certificate was not trusted: its CA, or its name.
//!
//! librdkafka reports both as the same "certificate verify failed" and its
//! advice is always the CA file. An operator who connects by an address the
//! certificate does not list would chase the wrong setting, so on such a
//! failure the broker is asked once more, by us, with the same trust
//! anchors and without the name check: if the chain is then trusted, the
//! name is what failed, and the certificate's own names say what to use.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use rdkafka::config::ClientConfig;

/// The trust settings of the clients (`ssl.ca.location`, `ssl.ca.pem`), as
/// the last client was configured: every client of a process shares them.
static TRUST: Mutex<Option<Trust>> = Mutex::new(None);

/// How long the second look may take: it only runs after a refusal.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Default)]
struct Trust {
    ca_location: Option<String>,
    ca_pem: Option<String>,
}

/// Remembers the trust anchors of a client about to be created.
pub fn remember(config: &ClientConfig) {
    let trust = Trust {
        ca_location: config.get("ssl.ca.location").map(str::to_owned),
        ca_pem: config.get("ssl.ca.pem").map(str::to_owned),
    };
    *TRUST.lock().unwrap_or_else(PoisonError::into_inner) = Some(trust);
}

/// For a certificate failure librdkafka reported against `broker`
/// (`host:port`): the names the broker's certificate lists, when its chain
/// is trusted and only the name failed; `None` when the CA is the problem
/// or the broker cannot be asked.
pub fn names_when_only_the_name_fails(broker: &str) -> Option<Vec<String>> {
    let trust = TRUST.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
    let host = host_of(broker)?;
    // The anchors librdkafka was given and no others: a connector would
    // add the system's store, and trust what librdkafka did not.
    let mut builder = SslContext::builder(SslMethod::tls_client()).ok()?;
    builder.set_verify(SslVerifyMode::PEER);
    match (&trust.ca_pem, &trust.ca_location) {
        (Some(pem), _) => {
            for cert in X509::stack_from_pem(pem.as_bytes()).ok()? {
                builder.cert_store_mut().add_cert(cert).ok()?;
            }
        }
        (None, Some(location)) if location != "probe" => {
            let path = std::path::Path::new(location);
            if path.is_dir() {
                builder.load_verify_locations(None, Some(path)).ok()?;
            } else {
                builder.set_ca_file(path).ok()?;
            }
        }
        // librdkafka's default and "probe": the system's store.
        _ => builder.set_default_verify_paths().ok()?,
    }
    let address = broker.to_socket_addrs().ok()?.next()?;
    let tcp = TcpStream::connect_timeout(&address, TIMEOUT).ok()?;
    tcp.set_read_timeout(Some(TIMEOUT)).ok()?;
    tcp.set_write_timeout(Some(TIMEOUT)).ok()?;
    // No host name is set on the session, so OpenSSL checks the chain only.
    let mut ssl = Ssl::new(&builder.build()).ok()?;
    if host.parse::<std::net::IpAddr>().is_err() {
        // SNI, as librdkafka sends it: a proxy may choose the certificate by it.
        ssl.set_hostname(host).ok()?;
    }
    let tls = ssl.connect(tcp).ok()?;
    let cert = tls.ssl().peer_certificate()?;
    let mut names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| {
                    n.dnsname()
                        .map(str::to_owned)
                        .or_else(|| n.ipaddress().and_then(ip_text))
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        // No subjectAltName: clients fall back to the common name.
        names.extend(
            cert.subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .filter_map(|e| e.data().to_string().ok()),
        );
    }
    // Listed after all: the failure was not the name.
    (!names.iter().any(|n| n == host)).then_some(names)
}

/// The host of `host:port` (`[v6]:port` too).
fn host_of(broker: &str) -> Option<&str> {
    let (host, _port) = broker.rsplit_once(':')?;
    Some(host.trim_start_matches('[').trim_end_matches(']'))
}

/// An address from a certificate's subjectAltName, as text.
fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| std::net::Ipv6Addr::from(v6).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_either_address_form() {
        assert_eq!(host_of("127.0.0.2:9093"), Some("127.0.0.2"));
        assert_eq!(host_of("[::1]:9093"), Some("::1"));
        assert_eq!(host_of("broker-1.example:9093"), Some("broker-1.example"));
        assert_eq!(host_of("no-port"), None);
    }

    #[test]
    fn certificate_addresses_read_as_text() {
        assert_eq!(ip_text(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("::1"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }
}
