//! Record kinds: what a CDR file holds, declared as data, not code.
//!
//! A kind is a name, the file-name globs that route a file to it, its topic,
//! its columns (each with a [`ColumnType`]), its event-time column, and
//! optionally its own dead-letter topic. The
//! contract's `data` and `voice` kinds are declared in [`builtin`] the same way
//! an operator declares a third one in the config file ([`declare`]); parsing,
//! validation and encoding read only the declaration.

pub mod builtin;
mod column;
pub mod declare;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub use builtin::{data, voice};
pub use column::{Column, ColumnType};

use crate::glob::glob_match;

/// A kind's declaration, checked (see [`Catalog::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSpec {
    /// The kind's name: the value of `_record_type` and of the ledger's kind.
    pub name: String,
    /// File-name globs routing a file to this kind.
    pub files: Vec<String>,
    /// Where its valid rows go.
    pub topic: String,
    /// Its columns, in output order.
    pub columns: Vec<Column>,
    /// The column whose value is the record's event time (and Kafka timestamp).
    pub time_column: String,
    /// Where its invalid rows go; `None`: the dead-letter topic of all kinds.
    pub dead_letter_topic: Option<String>,
}

/// A kind, shared: cheap to clone, compared and ordered by name.
#[derive(Clone)]
pub struct RecordKind(Arc<KindSpec>);

impl RecordKind {
    /// Wraps a declaration that [`Catalog::new`] has checked.
    fn new(spec: KindSpec) -> Self {
        RecordKind(Arc::new(spec))
    }

    /// The value of `_record_type` in every message.
    pub fn as_str(&self) -> &str {
        &self.0.name
    }

    /// The whole declaration.
    pub fn spec(&self) -> &KindSpec {
        &self.0
    }

    /// The kind's columns, in output order.
    pub fn columns(&self) -> &[Column] {
        &self.0.columns
    }

    /// The declared column names, comma-separated: a file's header line.
    pub fn header(&self) -> String {
        let names: Vec<&str> = self.0.columns.iter().map(|c| c.name.as_str()).collect();
        names.join(",")
    }

    /// The column whose value is the record's event time.
    pub fn time_column(&self) -> &str {
        &self.0.time_column
    }

    /// Where valid rows go.
    pub fn topic(&self) -> &str {
        &self.0.topic
    }

    /// Whether `file_name` is routed to this kind.
    pub fn matches(&self, file_name: &str) -> bool {
        self.0.files.iter().any(|g| glob_match(g, file_name))
    }
}

impl fmt::Debug for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for RecordKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RecordKind {}

impl Hash for RecordKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for RecordKind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RecordKind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// A declaration that cannot be used, with the kind and column it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kind {kind:?}: {problem}")]
pub struct SchemaError {
    /// The kind declared.
    pub kind: String,
    /// What is wrong, naming the column or setting.
    pub problem: String,
}

/// Every kind the service knows, in routing order: a file goes to the first
/// kind one of whose globs matches its name.
#[derive(Debug, Clone)]
pub struct Catalog {
    kinds: Vec<RecordKind>,
}

impl Catalog {
    /// Checks each declaration and their set: unique kind names, columns
    /// named as Avro and JSON keys allow and unique, an event-time column of
    /// type timestamp that is required.
    pub fn new(specs: Vec<KindSpec>) -> Result<Catalog, SchemaError> {
        let mut kinds: Vec<RecordKind> = Vec::with_capacity(specs.len());
        for spec in specs {
            check(&spec)?;
            if kinds.iter().any(|k| k.as_str() == spec.name) {
                return Err(problem(&spec.name, "declared twice".into()));
            }
            kinds.push(RecordKind::new(spec));
        }
        Ok(Catalog { kinds })
    }

    /// The contract's two kinds with their default topics and lists.
    pub fn builtin() -> Catalog {
        Catalog {
            kinds: vec![data(), voice()],
        }
    }

    /// The kind `file_name` is routed to, if any.
    pub fn for_file(&self, file_name: &str) -> Option<&RecordKind> {
        self.kinds.iter().find(|k| k.matches(file_name))
    }

    /// The kind named `name`.
    pub fn get(&self, name: &str) -> Option<&RecordKind> {
        self.kinds.iter().find(|k| k.as_str() == name)
    }

    /// Every kind, in routing order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &RecordKind> {
        self.kinds.iter()
    }
}

fn problem(kind: &str, problem: String) -> SchemaError {
    SchemaError {
        kind: kind.to_owned(),
        problem,
    }
}

/// Letters, digits and `_`, not starting with a digit: a name Avro accepts,
/// and a JSON key copied without escaping. A leading `_` is the metadata's.
fn is_column_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check(spec: &KindSpec) -> Result<(), SchemaError> {
    let fail = |p: String| Err(problem(&spec.name, p));
    let name_ok = !spec.name.is_empty()
        && spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return fail("a kind's name is lowercase letters, digits, `_` and `-`".into());
    }
    if spec.files.is_empty() || spec.files.iter().any(String::is_empty) {
        return fail("`files` needs at least one non-empty glob".into());
    }
    if spec.topic.is_empty() || spec.dead_letter_topic.as_deref() == Some("") {
        return fail("a topic name must not be empty".into());
    }
    if spec.columns.is_empty() {
        return fail("`columns` must name at least one column".into());
    }
    for (i, col) in spec.columns.iter().enumerate() {
        if !is_column_name(&col.name) {
            return fail(format!(
                "column {:?}: a column name is ASCII letters, digits and `_`, starting with a letter",
                col.name
            ));
        }
        if spec.columns[..i].iter().any(|c| c.name == col.name) {
            return fail(format!("column {:?} is declared twice", col.name));
        }
        check_type(&col.ty).or_else(|p| fail(format!("column {:?}: {p}", col.name)))?;
    }
    let time = spec.columns.iter().find(|c| c.name == spec.time_column);
    match time {
        None => return fail(format!("time-column {:?} is not one of its columns", spec.time_column)),
        Some(c) if !matches!(c.ty, ColumnType::Timestamp { .. }) => {
            return fail(format!(
                "time-column {:?} must be of type timestamp, not {}",
                c.name,
                c.ty.name()
            ))
        }
        Some(c) if c.optional => return fail(format!("time-column {:?} must not be optional", c.name)),
        Some(_) => {}
    }
    Ok(())
}

fn check_type(ty: &ColumnType) -> Result<(), String> {
    match ty {
        ColumnType::Digits { min, max } if *min == 0 || min > max || *max > 64 => {
            Err(format!("digits needs 1 <= min <= max <= 64, got min {min}, max {max}"))
        }
        ColumnType::Decimal { scale } if *scale > 18 => Err(format!("decimal scale is at most 18, got {scale}")),
        ColumnType::Enum { symbols } if symbols.is_empty() => Err("an enum needs at least one symbol".into()),
        ColumnType::Enum { symbols } => match symbols.iter().enumerate().find(|(i, s)| symbols[..*i].contains(s)) {
            Some((_, dup)) => Err(format!("enum symbol {dup:?} is listed twice")),
            None if symbols.iter().any(String::is_empty) => Err("an enum symbol must not be empty".into()),
            None => Ok(()),
        },
        ColumnType::Timestamp { precision, .. } if *precision > 6 => Err(format!(
            "timestamp precision is 0 to 6 fraction digits, got {precision}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
