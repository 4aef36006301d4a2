//! A client of the Confluent schema registry REST API: the few calls the
//! service makes at start, blocking (they run before any file is taken).
//! `ureq` over native TLS (OpenSSL, which librdkafka and libssh2 already
//! link), so no second TLS stack and no second async runtime.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::config::RegistryArgs;
use crate::secret::Secret;

/// How long one registry call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The Confluent API's content type.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The settings do not make a client (an unreadable CA file...).
    #[error("schema registry settings: {0}")]
    Settings(String),
    /// No answer: refused, timed out, TLS failed.
    #[error("schema registry at {url} unreachable: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why, as the HTTP client says.
        reason: String,
    },
    /// An answer other than the one expected.
    #[error("schema registry at {url} answered {status}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message, or the body.
        message: String,
    },
    /// A change the subject's compatibility rule refuses.
    #[error(
        "the schema of subject {subject} is incompatible with its registered version under the rule {rule}: {why}"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// The subject's compatibility level.
        rule: String,
        /// What breaks, naming the field.
        why: String,
    },
}

impl RegistryError {
    /// Whether waiting may help: no answer, or the registry's own trouble
    /// (5xx, such as 503 while it starts).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500,
            RegistryError::Settings(_) | RegistryError::Incompatible { .. } => false,
        }
    }
}

/// A registry at one base URL.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<Secret>,
}

impl Client {
    /// A client of the registry `args` name (its URL must be set).
    pub fn new(base: &str, args: &RegistryArgs) -> Result<Client, RegistryError> {
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::NativeTls);
        if let Some(path) = &args.schema_registry_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| RegistryError::Settings(format!("reading the CA file {}: {e}", path.display())))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RegistryError::Settings(format!("the CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(RegistryError::Settings(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .tls_config(tls.build())
            .build()
            .new_agent();
        let auth = args.schema_registry_user.as_ref().map(|user| {
            let password = args.schema_registry_password.as_ref().map_or("", Secret::expose);
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Secret::new(format!("Basic {token}"))
        });
        Ok(Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// `GET`; `Ok((status, body as JSON))` for any answer.
    fn get(&self, path: &str) -> Result<(u16, Value), RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url).header("Accept", CONTENT_TYPE);
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth.expose());
        }
        answer(&url, req.call())
    }

    /// `POST` of a JSON body; `Ok((status, body as JSON))` for any answer.
    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE);
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth.expose());
        }
        answer(&url, req.send(body.to_string()))
    }

    fn unexpected(&self, path: &str, status: u16, body: &Value) -> RegistryError {
        RegistryError::Status {
            url: format!("{}{path}", self.base),
            status,
            message: body
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_owned),
        }
    }

    /// Answers at all: the registry is up (`GET /subjects`).
    pub fn ready(&self) -> Result<(), RegistryError> {
        match self.get("/subjects")? {
            (200, _) => Ok(()),
            (status, body) => Err(self.unexpected("/subjects", status, &body)),
        }
    }

    /// The id of `schema` if `subject` already has it.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let path = format!("/subjects/{subject}");
        match self.post(&path, &json!({ "schema": schema }))? {
            (200, body) => id_of(&body).map(Some).ok_or_else(|| self.unexpected(&path, 200, &body)),
            (404, _) => Ok(None),
            (status, body) => Err(self.unexpected(&path, status, &body)),
        }
    }

    /// The subject's latest schema text, if it has any version.
    pub fn latest(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let path = format!("/subjects/{subject}/versions/latest");
        match self.get(&path)? {
            (200, body) => match body.get("schema").and_then(Value::as_str) {
                Some(s) => Ok(Some(s.to_owned())),
                None => Err(self.unexpected(&path, 200, &body)),
            },
            (404, _) => Ok(None),
            (status, body) => Err(self.unexpected(&path, status, &body)),
        }
    }

    /// Whether the registry finds `schema` compatible with the subject's
    /// latest version under the subject's rule.
    pub fn compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let path = format!("/compatibility/subjects/{subject}/versions/latest");
        match self.post(&path, &json!({ "schema": schema }))? {
            (200, body) => body
                .get("is_compatible")
                .and_then(Value::as_bool)
                .ok_or_else(|| self.unexpected(&path, 200, &body)),
            (status, body) => Err(self.unexpected(&path, status, &body)),
        }
    }

    /// The subject's compatibility level, or the registry's default.
    pub fn rule(&self, subject: &str) -> Result<String, RegistryError> {
        for path in [format!("/config/{subject}"), "/config".to_owned()] {
            match self.get(&path)? {
                (200, body) => {
                    if let Some(level) = body.get("compatibilityLevel").and_then(Value::as_str) {
                        return Ok(level.to_owned());
                    }
                }
                (404, _) => continue,
                (status, body) => return Err(self.unexpected(&path, status, &body)),
            }
        }
        Ok("BACKWARD".to_owned())
    }

    /// Registers `schema` under `subject`; returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!("/subjects/{subject}/versions");
        match self.post(&path, &json!({ "schema": schema }))? {
            (200, body) => id_of(&body).ok_or_else(|| self.unexpected(&path, 200, &body)),
            (status, body) => Err(self.unexpected(&path, status, &body)),
        }
    }
}

/// The status and JSON body of an answer (a body that is not JSON as a string).
fn answer(
    url: &str,
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Value), RegistryError> {
    let unreachable = |e: ureq::Error| RegistryError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let mut response = sent.map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(unreachable)?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn id_of(body: &Value) -> Option<u32> {
    body.get("id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
}
