//! LocalSource: the Source contract over a local directory.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use cdr_to_redpanda::source::local::LocalSource;
use cdr_to_redpanda::source::{RemoteFile, Source, SourceError};
use sha2::{Digest, Sha256};

fn listed(source: &mut LocalSource, name: &str) -> RemoteFile {
    let listing = source.list().unwrap();
    listing
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn lists_only_regular_files_with_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"hello");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("cdr_data_1.csv"), dir.path().join("link.csv")).unwrap();
    let mut source = LocalSource::new(dir.path());
    let listing = source.list().unwrap();
    assert_eq!(listing.len(), 1, "{listing:?}");
    let meta = std::fs::metadata(dir.path().join("cdr_data_1.csv")).unwrap();
    assert_eq!(listing[0].size, 5);
    assert_eq!(listing[0].mtime, std::os::unix::fs::MetadataExt::mtime(&meta));
}

#[test]
fn non_utf8_names_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::ffi::OsStr::from_bytes(b"cdr_data_\xff.csv");
    std::fs::write(dir.path().join(raw), b"x").unwrap();
    write(dir.path(), "cdr_data_1.csv", b"x");
    let mut source = LocalSource::new(dir.path());
    assert_eq!(source.list().unwrap().len(), 1);
    assert_eq!(source.list().unwrap().len(), 1, "and stays skipped");
}

#[test]
fn fetch_copies_byte_identical_with_sha256_and_truncates_old_staging() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the 1 MiB buffer and not a multiple of it.
    let bytes: Vec<u8> = (0..3_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(dir.path(), "cdr_data_1.csv", &bytes);
    let staging_dir = tempfile::tempdir().unwrap();
    let staging = staging_dir.path().join("s");
    std::fs::write(&staging, vec![1u8; 5_000_000]).unwrap();
    let mut source = LocalSource::new(dir.path());
    let file = listed(&mut source, "cdr_data_1.csv");
    let fetched = source.fetch(&file, &staging).unwrap();
    assert_eq!(fetched.size, bytes.len() as u64);
    assert_eq!(fetched.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(std::fs::read(&staging).unwrap(), bytes);
}

#[test]
fn a_file_grown_after_listing_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"a");
    let mut source = LocalSource::new(dir.path());
    let file = listed(&mut source, "cdr_data_1.csv");
    write(dir.path(), "cdr_data_1.csv", b"ab");
    let staging = tempfile::NamedTempFile::new().unwrap();
    match source.fetch(&file, staging.path()) {
        Err(SourceError::Changed { name, what }) => {
            assert_eq!(name, "cdr_data_1.csv");
            assert!(what.contains("before reading"), "{what}");
        }
        other => panic!("expected Changed, got {other:?}"),
    }
}

#[test]
fn a_file_touched_after_listing_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"a");
    let mut source = LocalSource::new(dir.path());
    let file = listed(&mut source, "cdr_data_1.csv");
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("cdr_data_1.csv"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let staging = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        source.fetch(&file, staging.path()),
        Err(SourceError::Changed { .. })
    ));
}

#[test]
fn a_file_removed_after_listing_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"a");
    let mut source = LocalSource::new(dir.path());
    let file = listed(&mut source, "cdr_data_1.csv");
    std::fs::remove_file(dir.path().join("cdr_data_1.csv")).unwrap();
    let staging = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        source.fetch(&file, staging.path()),
        Err(SourceError::Gone { .. })
    ));
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
fn delete_removes_and_a_second_delete_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cdr_data_1.csv", b"a");
    let mut source = LocalSource::new(dir.path());
    source.delete("cdr_data_1.csv").unwrap();
    assert!(source.list().unwrap().is_empty());
    assert!(matches!(source.delete("cdr_data_1.csv"), Err(SourceError::Gone { .. })));
}

#[test]
fn move_to_creates_the_directory_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = LocalSource::new(dir.path());
    let target = dir.path().join("done/2024");
    for (i, content) in ["first", "second", "third"].iter().enumerate() {
        write(dir.path(), "cdr_data_1.csv", content.as_bytes());
        let moved = source.move_to("cdr_data_1.csv", "done/2024").unwrap();
        let expected = match i {
            0 => target.join("cdr_data_1.csv"),
            n => target.join(format!("cdr_data_1.csv.{n}")),
        };
        assert_eq!(moved, expected.display().to_string());
        assert_eq!(std::fs::read(&expected).unwrap(), content.as_bytes());
    }
    assert!(source.list().unwrap().is_empty());
    assert!(matches!(
        source.move_to("cdr_data_1.csv", "done"),
        Err(SourceError::Gone { .. })
    ));
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
fn unsafe_names_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    write(dir.path(), "victim.csv", b"keep me");
    let mut source = LocalSource::new(&inner);
    assert!(matches!(source.delete("../victim.csv"), Err(SourceError::Refused(_))));
    assert!(matches!(
        source.move_to("../victim.csv", "x"),
        Err(SourceError::Refused(_))
    ));
    let hostile = RemoteFile {
        name: "../victim.csv".into(),
        size: 7,
        mtime: 0,
    };
    let staging = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        source.fetch(&hostile, staging.path()),
        Err(SourceError::Refused(_))
    ));
    assert!(dir.path().join("victim.csv").exists());
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
