//! What only LocalSource has: a staging disk it writes, another file system to
//! move to, a directory that may be missing. The `Source` contract itself is
//! tested over both sources in `source_contract.rs`.

use std::path::Path;

use cdr_to_redpanda::source::local::LocalSource;
use cdr_to_redpanda::source::{RemoteFile, Source, SourceError};

fn listed(source: &mut LocalSource, name: &str) -> RemoteFile {
    let listing = source.list().unwrap().files;
    listing
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn staging_write_failure_is_a_staging_error_naming_the_staging_file_and_no_connection_fault() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"a");
    let mut source = LocalSource::new(dir.path());
    let file = listed(&mut source, "cdr_data_1.csv");
    let staging = dir.path().join("no-such-dir/staged");
    match source.fetch(&file, &staging) {
        Err(e @ SourceError::Staging { .. }) => {
            assert!(
                e.to_string().contains("writing staging file") && e.to_string().contains("no-such-dir"),
                "{e}"
            );
            assert!(!e.is_transient(), "no reconnect can help our own disk");
        }
        other => panic!("expected Staging, got {other:?}"),
    }
}

#[test]
fn move_to_an_absolute_directory_on_another_file_system() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/shm is usually tmpfs: a hard link there fails and the copy path runs.
    let other = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    write(dir.path(), "cdr_data_1.csv", b"payload");
    let mut source = LocalSource::new(dir.path());
    let target = other.path().join("archive");
    let moved = source.move_to("cdr_data_1.csv", target.to_str().unwrap()).unwrap();
    assert_eq!(moved, target.join("cdr_data_1.csv").display().to_string());
    assert_eq!(std::fs::read(target.join("cdr_data_1.csv")).unwrap(), b"payload");
    assert!(!dir.path().join("cdr_data_1.csv").exists());
}

#[test]
fn a_missing_directory_is_refused() {
    let mut source = LocalSource::new("/nonexistent/cdr-drop");
    match source.list() {
        Err(SourceError::Refused(msg)) => assert!(msg.contains("/nonexistent/cdr-drop"), "{msg}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(source.describe().contains("/nonexistent/cdr-drop"));
}
