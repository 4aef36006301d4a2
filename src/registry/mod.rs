//! The schema registry: at start, each kind written as `avro` gets its
//! schema's id, looked up or registered under the subject `<topic>-value`
//! (the Confluent default, TopicNameStrategy). The ids are kept for the
//! process: once started, the service never calls the registry again, so a
//! registry outage does not stop ingestion.
//!
//! A changed declaration is registered as a new version only if the
//! registry finds it compatible under the subject's rule; if not, the
//! service refuses to start, naming the field and the rule, before anything
//! is produced.

pub mod client;

use std::collections::BTreeMap;

use crate::config::RegistryArgs;
use crate::encode::{avro, Format, ValueFormat};
use crate::schema::RecordKind;
use crate::sink::topics::TopicLayout;
pub use client::{Client, RegistryError};

/// The subject of a kind's value schema: `<topic>-value`.
pub fn subject(kind: &RecordKind) -> String {
    format!("{}-value", kind.topic())
}

/// Every kind's prepared value format, by kind name; an `avro` kind's
/// schema looked up or registered first. `default_offset_secs`: the zone of
/// timestamps without one of their own.
pub fn prepare(
    layout: &TopicLayout,
    args: &RegistryArgs,
    default_offset_secs: i32,
) -> Result<BTreeMap<String, ValueFormat>, RegistryError> {
    let client = registry_for(layout, args)?;
    let mut formats = BTreeMap::new();
    for kind in layout.kinds.iter() {
        let format = match layout.format_of(kind) {
            Format::Json => ValueFormat::json(),
            Format::JsonTyped => ValueFormat::json_typed(kind, default_offset_secs),
            Format::Avro => {
                let client = client
                    .as_ref()
                    .expect("registry_for makes a client when a kind is avro");
                ValueFormat::avro(kind, default_offset_secs, ensure_schema(client, kind)?)
            }
        };
        formats.insert(kind.as_str().to_owned(), format);
    }
    Ok(formats)
}

/// For `check-config`: each `avro` kind's subject and what the registry
/// holds of its schema, without registering anything. `None` if no kind is
/// written as `avro`.
pub fn check(layout: &TopicLayout, args: &RegistryArgs) -> Result<Option<Vec<String>>, RegistryError> {
    let Some(client) = registry_for(layout, args)? else {
        return Ok(None);
    };
    client.ready()?;
    let mut lines = Vec::new();
    for kind in layout.kinds.iter().filter(|k| layout.format_of(k).needs_registry()) {
        let subject = subject(kind);
        let schema = avro::schema_text(kind);
        let state = match client.lookup(&subject, &schema)? {
            Some(id) => format!("registered, schema id {id}"),
            None if client.latest(&subject)?.is_none() => "new subject: registered at start".to_owned(),
            None if client.compatible(&subject, &schema)? => "changed, compatible: registered at start".to_owned(),
            None => "changed, INCOMPATIBLE: the service will refuse to start".to_owned(),
        };
        lines.push(format!("{kind}: subject {subject}: {state}"));
    }
    Ok(Some(lines))
}

/// The registry client, if some kind is written as `avro`.
fn registry_for(layout: &TopicLayout, args: &RegistryArgs) -> Result<Option<Client>, RegistryError> {
    let Some(avro_kind) = layout.kinds.iter().find(|k| layout.format_of(k).needs_registry()) else {
        return Ok(None);
    };
    match &args.schema_registry_url {
        Some(url) => Client::new(url, args).map(Some),
        None => Err(RegistryError::Settings(format!(
            "kind {avro_kind} is written as avro, which needs --schema-registry-url (SCHEMA_REGISTRY_URL)"
        ))),
    }
}

/// The id of `kind`'s schema under its subject, registering it if new and
/// compatible.
fn ensure_schema(client: &Client, kind: &RecordKind) -> Result<u32, RegistryError> {
    let subject = subject(kind);
    let schema = avro::schema_text(kind);
    if let Some(id) = client.lookup(&subject, &schema)? {
        tracing::info!(kind = %kind, subject, schema_id = id, "schema known to the registry");
        return Ok(id);
    }
    if let Some(latest) = client.latest(&subject)? {
        if !client.compatible(&subject, &schema)? {
            let rule = client.rule(&subject)?;
            return Err(incompatible(&subject, &rule, &latest, &schema));
        }
    }
    let id = client.register(&subject, &schema).map_err(|e| match e {
        // Registered by another instance meanwhile, and refused: the same refusal.
        RegistryError::Status {
            status: 409, message, ..
        } => RegistryError::Incompatible {
            subject: subject.clone(),
            rule: "the subject's".into(),
            why: message,
        },
        other => other,
    })?;
    tracing::info!(kind = %kind, subject, schema_id = id, "schema registered");
    Ok(id)
}

/// The refusal of `new` under `rule`, explained field by field against the
/// latest registered schema.
fn incompatible(subject: &str, rule: &str, latest: &str, new: &str) -> RegistryError {
    let backward = rule.starts_with("BACKWARD") || rule.starts_with("FULL");
    let forward = rule.starts_with("FORWARD") || rule.starts_with("FULL");
    let why = avro::incompatibility(latest, new, backward, forward).unwrap_or_else(|| {
        "the registry refuses it against an earlier version (a _TRANSITIVE rule checks them all)".into()
    });
    RegistryError::Incompatible {
        subject: subject.to_owned(),
        rule: rule.to_owned(),
        why,
    }
}
