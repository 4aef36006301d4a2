//! One slot's handling of a file, with a local source and a scripted sink:
//! what the file's outcome is when something on our side fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdr_state::{FileStatus, Ledger};

use super::*;
use crate::backoff::Backoff;
use crate::ingest::turn::Alone;
use crate::sink::txn::fake::ScriptedSink;
use crate::source::local::LocalSource;
use crate::source::{Fetched, Listing, RemoteFile, Source, SourceError};

const NAME: &str = "cdr_data_20240101_000000.csv";

/// A local source whose staging disk fails reads: each fetched copy is
/// replaced by a directory, which reading fails with EISDIR.
struct UnreadableStaging(LocalSource);

impl Source for UnreadableStaging {
    fn list(&mut self) -> Result<Listing, SourceError> {
        self.0.list()
    }

    fn fetch(&mut self, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError> {
        let fetched = self.0.fetch(file, staging)?;
        std::fs::remove_file(&fetched.path).unwrap();
        std::fs::create_dir(&fetched.path).unwrap();
        Ok(fetched)
    }

    fn delete(&mut self, name: &str) -> Result<(), SourceError> {
        self.0.delete(name)
    }

    fn move_to(&mut self, name: &str, dir: &str) -> Result<String, SourceError> {
        self.0.move_to(name, dir)
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

fn engine(source: Box<dyn Source>, ledger: Arc<Ledger>, staging: PathBuf) -> Engine {
    let mut settings = IngestSettings::new(staging);
    settings.replay_backoff = Backoff::NONE;
    settings.park.backoff = Duration::ZERO;
    Engine::new(
        ledger,
        source,
        None,
        Arc::new(Mutex::new(CheckpointStore::default())),
        settings,
    )
}

#[test]
fn a_staging_disk_fault_backs_the_file_off_instead_of_failing_it_and_it_lands_later() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("in");
    std::fs::create_dir(&files).unwrap();
    let header = "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime";
    let row =
        "9724515726732,1800,787119,662662,application,221.128.139.195,http://example.com,2024-01-01 01:01:15.291148";
    std::fs::write(files.join(NAME), format!("{header}\n{row}\n")).unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("ledger")).unwrap());
    let listed = LocalSource::new(&files).list().unwrap().files;
    let file = listed.iter().find(|f| f.name == NAME).unwrap();
    let mut sink = ScriptedSink::default();

    let broken = Box::new(UnreadableStaging(LocalSource::new(&files)));
    let outcome = engine(broken, ledger.clone(), staging.clone())
        .ingest_one(&mut sink, file, None, &Alone)
        .unwrap();
    assert!(
        matches!(outcome, FileOutcome::Retrying { attempt: 1, .. }),
        "{outcome:?}"
    );
    let rec = ledger.file(NAME).unwrap().unwrap();
    assert_ne!(rec.status, FileStatus::Failed, "{rec:?}");
    assert!(
        rec.error
            .as_deref()
            .unwrap_or_default()
            .contains("reading the staged copy"),
        "{rec:?}"
    );
    assert!(sink.committed.is_empty());

    // The disk heals: the same file lands, whole.
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::create_dir(&staging).unwrap();
    let outcome = engine(Box::new(LocalSource::new(&files)), ledger.clone(), staging)
        .ingest_one(&mut sink, file, None, &Alone)
        .unwrap();
    assert!(
        matches!(outcome, FileOutcome::Committed { rows: 1, invalid: 0 }),
        "{outcome:?}"
    );
    assert_eq!(ledger.file(NAME).unwrap().unwrap().status, FileStatus::Committed);
}
