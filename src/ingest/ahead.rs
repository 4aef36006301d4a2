//! Read-ahead: while a slot produces one file, the file it will take next
//! downloads on a second source session, so the producer no longer waits
//! for each file's download (on a WAN link that wait can exceed the
//! producing itself).
//!
//! Only bytes move early. The download writes a staging file of this slot's
//! own and touches neither the ledger nor Kafka, so every decision about the
//! file (done before, changed, duplicate, resumed) is still made when the
//! slot takes it, from the same facts as without read-ahead. A read-ahead
//! that failed, or whose file the slot did not take next, is thrown away and
//! the file is fetched the usual way: it can only save time, never decide.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::metrics::METRICS;
use crate::source::{Fetched, RemoteFile, Source, SourceError};

type Download = JoinHandle<(Box<dyn Source>, Result<Fetched, SourceError>)>;

pub struct ReadAhead {
    /// The read-ahead session, absent while a download holds it (or for
    /// good, if a download thread could not start or panicked).
    idle: Option<Box<dyn Source>>,
    pending: Option<Pending>,
    staging_dir: PathBuf,
    slot: usize,
}

struct Pending {
    file: RemoteFile,
    path: PathBuf,
    download: Download,
}

impl ReadAhead {
    pub fn new(source: Box<dyn Source>, staging_dir: PathBuf, slot: usize) -> Self {
        ReadAhead {
            idle: Some(source),
            pending: None,
            staging_dir,
            slot,
        }
    }

    /// Starts downloading `file` in the background, after throwing away any
    /// earlier read-ahead nobody claimed.
    pub fn start(&mut self, file: &RemoteFile) {
        self.discard();
        let Some(mut source) = self.idle.take() else {
            return;
        };
        // Not the slot's own staging name: another slot may take this file
        // after all and fetch it at the same moment.
        let path = super::staging_path(&self.staging_dir, &file.name, &format!("ahead-{}", self.slot));
        let (f, p) = (file.clone(), path.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("ahead-{}", self.slot))
            .spawn(move || {
                let result = source.fetch(&f, &p);
                (source, result)
            });
        match spawned {
            Ok(download) => {
                self.pending = Some(Pending {
                    file: file.clone(),
                    path,
                    download,
                })
            }
            Err(e) => {
                tracing::warn!(slot = self.slot, error = %e, "read-ahead thread not started; read-ahead off for this slot")
            }
        }
    }

    /// The downloaded bytes of `file`, waiting for its download if it still
    /// runs. None when the read-ahead was of another file or failed; that
    /// one is thrown away.
    pub fn claim(&mut self, file: &RemoteFile) -> Option<Fetched> {
        let pending = self.pending.take()?;
        let same = pending.file == *file;
        match self.join(pending.download) {
            Some(Ok(fetched)) if same => {
                METRICS.read_ahead.add("used", 1);
                return Some(fetched);
            }
            Some(Err(e)) => {
                tracing::debug!(file = %pending.file.name, error = %e, "read-ahead failed; fetched again when taken")
            }
            _ => {}
        }
        METRICS.read_ahead.add("discarded", 1);
        remove(&pending.path);
        None
    }

    /// Waits for a running read-ahead and deletes what it wrote.
    pub fn discard(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.join(pending.download);
            METRICS.read_ahead.add("discarded", 1);
            remove(&pending.path);
        }
    }

    fn join(&mut self, download: Download) -> Option<Result<Fetched, SourceError>> {
        match download.join() {
            Ok((source, result)) => {
                self.idle = Some(source);
                Some(result)
            }
            Err(_) => {
                tracing::warn!(
                    slot = self.slot,
                    "read-ahead download panicked; read-ahead off for this slot"
                );
                None
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.discard();
    }
}

fn remove(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::local::LocalSource;

    fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<RemoteFile>, ReadAhead) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        for (name, body) in files {
            std::fs::write(src.join(name), body).unwrap();
        }
        let mut source = LocalSource::new(&src);
        let mut listed = source.list().unwrap().files;
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        (dir, listed, ReadAhead::new(Box::new(source), staging, 3))
    }

    fn staged(dir: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_file_read_ahead_is_handed_over_with_its_bytes_and_hash() {
        let (dir, files, mut ahead) = setup(&[("a.csv", "one\n"), ("b.csv", "two\n")]);
        ahead.start(&files[1]);
        let got = ahead.claim(&files[1]).expect("read-ahead of b.csv");
        assert_eq!(std::fs::read_to_string(&got.path).unwrap(), "two\n");
        assert_eq!(got.size, 4);
        assert_eq!(got.sha256, <sha2::Sha256 as sha2::Digest>::digest(b"two\n").as_slice());
        let expected = crate::ingest::staging_path(std::path::Path::new(""), "b.csv", "ahead-3");
        assert_eq!(staged(&dir), vec![expected.to_string_lossy().into_owned()]);
        // Its session is back: the next read-ahead runs too.
        ahead.start(&files[0]);
        assert!(ahead.claim(&files[0]).is_some());
    }

    #[test]
    fn a_read_ahead_of_another_file_is_thrown_away_with_its_staging_file() {
        let (dir, files, mut ahead) = setup(&[("a.csv", "one\n"), ("b.csv", "two\n")]);
        ahead.start(&files[1]);
        assert!(ahead.claim(&files[0]).is_none());
        assert!(staged(&dir).is_empty());
        assert!(ahead.claim(&files[1]).is_none(), "nothing left to claim");
    }

    #[test]
    fn a_file_changed_since_its_listing_is_not_handed_over() {
        let (dir, files, mut ahead) = setup(&[("a.csv", "one\n")]);
        std::fs::write(dir.path().join("src/a.csv"), "one, and more\n").unwrap();
        ahead.start(&files[0]);
        assert!(ahead.claim(&files[0]).is_none());
        assert!(staged(&dir).is_empty());
    }

    #[test]
    fn dropping_it_waits_for_the_download_and_leaves_no_staging_file() {
        let (dir, files, mut ahead) = setup(&[("a.csv", "one\n")]);
        ahead.start(&files[0]);
        drop(ahead);
        assert!(staged(&dir).is_empty());
    }
}
