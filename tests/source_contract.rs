//! The `Source` contract, written once and run over both sources: a local
//! directory, and the real sshd of the local stack (`scripts/stack.sh`). What
//! only one source has (authentication, host keys, a staging disk, another
//! file system) stays in `local_source.rs` and `sftp_source.rs`.

mod common;
mod sftp_support;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cdr_to_redpanda::source::ignored::{IgnoreReason, Ignored};
use cdr_to_redpanda::source::local::LocalSource;
use cdr_to_redpanda::source::sftp::SftpSource;
use cdr_to_redpanda::source::{Listing, RemoteFile, Source, SourceError};
use sftp_support::{pseudo_random_bytes, sha256_of};

/// A source over a directory the test writes to on the local disk.
trait Fixture {
    /// Where the test puts the files the source lists.
    fn dir(&self) -> &Path;
    /// A new source over that directory.
    fn source(&self) -> Box<dyn Source> {
        self.source_following(false)
    }
    /// The same, following symlinks or not (`--follow-symlinks`).
    fn source_following(&self, symlinks: bool) -> Box<dyn Source>;
    /// How the source names `relative` (a path under its directory) in what it returns.
    fn shown(&self, relative: &str) -> String;

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

struct Local(tempfile::TempDir);

impl Fixture for Local {
    fn dir(&self) -> &Path {
        self.0.path()
    }
    fn source_following(&self, symlinks: bool) -> Box<dyn Source> {
        Box::new(LocalSource::new(self.0.path()).follow_symlinks(symlinks))
    }
    fn shown(&self, relative: &str) -> String {
        self.0.path().join(relative).display().to_string()
    }
}

struct Sftp {
    stack: sftp_support::Stack,
    dir: sftp_support::TestDir,
}

impl Fixture for Sftp {
    fn dir(&self) -> &Path {
        &self.dir.local
    }
    fn source_following(&self, symlinks: bool) -> Box<dyn Source> {
        let mut config = self.stack.password_config(&self.dir);
        config.follow_symlinks = symlinks;
        Box::new(SftpSource::new(config).unwrap())
    }
    fn shown(&self, relative: &str) -> String {
        format!("{}/{relative}", self.dir.remote)
    }
}

fn listed(source: &mut dyn Source, name: &str) -> RemoteFile {
    let listing = source.list().unwrap().files;
    listing
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not in listing {listing:?}"))
        .clone()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

fn lists_only_regular_utf8_named_files_with_size_and_mtime_and_says_why_not_the_others(f: &dyn Fixture) {
    let path = f.write("cdr_data_1.csv", b"hello");
    std::fs::create_dir(f.dir().join("sub")).unwrap();
    std::os::unix::fs::symlink(&path, f.dir().join("link.csv")).unwrap();
    std::fs::write(f.dir().join(std::ffi::OsStr::from_bytes(b"cdr_data_\xff.csv")), b"x").unwrap();
    mkfifo(&f.dir().join("cdr_data_fifo.csv"));
    let mut source = f.source();
    for pass in ["first", "second"] {
        let Listing {
            files: listing,
            mut ignored,
        } = source.list().unwrap();
        ignored.sort();
        assert_eq!(
            ignored,
            [
                Ignored::new("cdr_data_fifo.csv", IgnoreReason::NotRegular),
                Ignored::new("cdr_data_\u{fffd}.csv", IgnoreReason::NotUtf8),
                Ignored::new("link.csv", IgnoreReason::Symlink),
            ],
            "{pass} listing: every entry but the directory accounted for"
        );
        assert_eq!(listing.len(), 1, "{pass} listing: {listing:?}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(listing[0].name, "cdr_data_1.csv");
        assert_eq!(listing[0].size, 5);
        assert_eq!(
            listing[0].mtime,
            std::os::unix::fs::MetadataExt::mtime(&meta),
            "Unix seconds"
        );
    }
}

fn followed_symlinks_list_as_their_target_and_fetch_its_bytes(f: &dyn Fixture) {
    let target = f.write("target.bin", b"twelve bytes");
    std::os::unix::fs::symlink(&target, f.dir().join("cdr_data_link.csv")).unwrap();
    std::os::unix::fs::symlink(f.dir().join("gone"), f.dir().join("cdr_data_dangling.csv")).unwrap();
    std::os::unix::fs::symlink(f.dir(), f.dir().join("cdr_data_dir.csv")).unwrap();
    let mut source = f.source_following(true);
    let Listing { files, ignored } = source.list().unwrap();
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["cdr_data_link.csv", "target.bin"]);
    assert_eq!(ignored, [Ignored::new("cdr_data_dangling.csv", IgnoreReason::Symlink)]);
    let link = listed(&mut *source, "cdr_data_link.csv");
    assert_eq!(link.size, 12, "the target's size");
    let staging = tempfile::NamedTempFile::new().unwrap();
    let fetched = source.fetch(&link, staging.path()).unwrap();
    assert_eq!(std::fs::read(staging.path()).unwrap(), b"twelve bytes");
    assert_eq!(fetched.sha256, sha256_of(b"twelve bytes"));
    // Not following, the same links are all ignored as symlinks.
    let ignored = f.source().list().unwrap().ignored;
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    assert!(ignored.iter().all(|i| i.reason == IgnoreReason::Symlink), "{ignored:?}");
}

fn fetch_copies_byte_identical_with_sha256_over_an_older_longer_staging_file(f: &dyn Fixture) {
    // Not a multiple of any read buffer, so the last read is partial.
    let bytes = pseudo_random_bytes(5 * 1024 * 1024 + 12_345, 1);
    f.write("cdr_data_1.csv", &bytes);
    let staging_dir = tempfile::tempdir().unwrap();
    let staging = staging_dir.path().join("staged");
    std::fs::write(&staging, vec![1u8; 7_000_000]).unwrap();
    let mut source = f.source();
    let file = listed(&mut *source, "cdr_data_1.csv");
    let fetched = source.fetch(&file, &staging).unwrap();
    assert_eq!(fetched.path, staging);
    assert_eq!(fetched.size, bytes.len() as u64);
    assert_eq!(fetched.sha256, sha256_of(&bytes));
    assert_eq!(std::fs::read(&staging).unwrap(), bytes);
}

fn a_file_grown_after_listing_is_changed_and_fetched_whole_once_listed_again(f: &dyn Fixture) {
    let path = f.write("cdr_data_1.csv", b"header\nrow1\n");
    let mut source = f.source();
    let file = listed(&mut *source, "cdr_data_1.csv");
    let mut w = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut w, b"row2\n").unwrap();
    drop(w);
    let staging = tempfile::NamedTempFile::new().unwrap();
    match source.fetch(&file, staging.path()) {
        Err(SourceError::Changed { name, what }) => {
            assert_eq!(name, "cdr_data_1.csv");
            assert!(what.contains("size"), "{what}");
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    let file = listed(&mut *source, "cdr_data_1.csv");
    let fetched = source.fetch(&file, staging.path()).unwrap();
    assert_eq!(fetched.sha256, sha256_of(b"header\nrow1\nrow2\n"));
}

fn a_file_touched_after_listing_is_changed(f: &dyn Fixture) {
    let path = f.write("cdr_data_1.csv", b"same size");
    let mut source = f.source();
    let file = listed(&mut *source, "cdr_data_1.csv");
    let later = SystemTime::now() + Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let staging = tempfile::NamedTempFile::new().unwrap();
    let result = source.fetch(&file, staging.path());
    assert!(matches!(result, Err(SourceError::Changed { .. })), "{result:?}");
}

fn a_file_removed_after_listing_is_gone_and_the_source_goes_on(f: &dyn Fixture) {
    let path = f.write("cdr_data_1.csv", b"x");
    f.write("cdr_data_2.csv", b"yz");
    let mut source = f.source();
    let file = listed(&mut *source, "cdr_data_1.csv");
    std::fs::remove_file(path).unwrap();
    let staging = tempfile::NamedTempFile::new().unwrap();
    let result = source.fetch(&file, staging.path());
    assert!(matches!(result, Err(SourceError::Gone { .. })), "{result:?}");
    let other = listed(&mut *source, "cdr_data_2.csv");
    assert_eq!(source.fetch(&other, staging.path()).unwrap().size, 2);
}

fn delete_removes_and_a_second_delete_is_gone(f: &dyn Fixture) {
    let path = f.write("cdr_data_1.csv", b"x");
    let mut source = f.source();
    source.delete("cdr_data_1.csv").unwrap();
    assert!(!path.exists());
    assert!(source.list().unwrap().files.is_empty());
    let again = source.delete("cdr_data_1.csv");
    assert!(matches!(again, Err(SourceError::Gone { .. })), "{again:?}");
}

fn move_to_creates_the_directory_and_suffixes_collisions_never_overwriting(f: &dyn Fixture) {
    let mut source = f.source();
    for (i, content) in ["first", "second", "third"].into_iter().enumerate() {
        f.write("cdr_data_1.csv", content.as_bytes());
        let moved = source.move_to("cdr_data_1.csv", "processed/2024").unwrap();
        let name = match i {
            0 => "cdr_data_1.csv".to_owned(),
            n => format!("cdr_data_1.csv.{n}"),
        };
        assert_eq!(moved, f.shown(&format!("processed/2024/{name}")));
        let kept = std::fs::read(f.dir().join("processed/2024").join(&name)).unwrap();
        assert_eq!(kept, content.as_bytes());
    }
    assert!(source.list().unwrap().files.is_empty(), "directories are not listed");
    let again = source.move_to("cdr_data_1.csv", "processed");
    assert!(matches!(again, Err(SourceError::Gone { .. })), "{again:?}");
}

fn names_that_leave_the_directory_are_refused_before_touching_anything(f: &dyn Fixture) {
    let victim = format!("victim-{}.csv", std::process::id());
    let outside = f.dir().parent().unwrap().join(&victim);
    std::fs::write(&outside, b"keep me").unwrap();
    let mut source = f.source();
    let hostile = RemoteFile {
        name: format!("../{victim}"),
        size: 7,
        mtime: 0,
    };
    let staging = tempfile::NamedTempFile::new().unwrap();
    let fetched = source.fetch(&hostile, staging.path());
    assert!(matches!(fetched, Err(SourceError::Refused(_))), "{fetched:?}");
    let deleted = source.delete(&hostile.name);
    assert!(matches!(deleted, Err(SourceError::Refused(_))), "{deleted:?}");
    let moved = source.move_to(&hostile.name, "processed");
    assert!(matches!(moved, Err(SourceError::Refused(_))), "{moved:?}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    std::fs::remove_file(outside).unwrap();
}

/// Runs each contract case once per source, as its own test.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[test]
                fn $case() {
                    super::$case(&super::Local(tempfile::tempdir().unwrap()));
                }
            )*
        }
        mod sftp {
            $(
                #[test]
                #[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
                fn $case() {
                    let stack = super::sftp_support::stack();
                    let dir = stack.test_dir(stringify!($case));
                    super::$case(&super::Sftp { stack, dir });
                }
            )*
        }
    };
}

contract!(
    lists_only_regular_utf8_named_files_with_size_and_mtime_and_says_why_not_the_others,
    followed_symlinks_list_as_their_target_and_fetch_its_bytes,
    fetch_copies_byte_identical_with_sha256_over_an_older_longer_staging_file,
    a_file_grown_after_listing_is_changed_and_fetched_whole_once_listed_again,
    a_file_touched_after_listing_is_changed,
    a_file_removed_after_listing_is_gone_and_the_source_goes_on,
    delete_removes_and_a_second_delete_is_gone,
    move_to_creates_the_directory_and_suffixes_collisions_never_overwriting,
    names_that_leave_the_directory_are_refused_before_touching_anything,
);
