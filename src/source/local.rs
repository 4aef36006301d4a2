//! A local directory as a source: the same contract as SFTP, for deployments
//! where files land on a mounted volume, and for tests without an SSH server.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ignored::{IgnoreReason, Ignored};
use super::{
    check_name, check_unchanged, collision_name, fetched, stage, Fetched, Listing, RemoteFile, Source, SourceError,
    StageError, MAX_COLLISION_SUFFIX,
};

/// Local reads are cheap per call; 1 MiB keeps system calls few without
/// holding much memory.
const READ_BUFFER: usize = 1 << 20;

/// Files in one local directory.
#[derive(Debug)]
pub struct LocalSource {
    dir: PathBuf,
    follow_symlinks: bool,
}

impl LocalSource {
    /// A source over `dir`. Nothing is checked until the first listing, like
    /// SFTP, so a mount that appears later is picked up.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalSource {
            dir: dir.into(),
            follow_symlinks: false,
        }
    }

    /// Lists a symlink to a regular file as that file (`--follow-symlinks`).
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// The directory being read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io_error(&self, context: String, source: io::Error) -> SourceError {
        SourceError::Io { context, source }
    }

    /// `dir` relative to the source directory unless absolute.
    fn resolve(&self, dir: &str) -> PathBuf {
        let dir = Path::new(dir);
        if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            self.dir.join(dir)
        }
    }
}

impl Source for LocalSource {
    fn list(&mut self) -> Result<Listing, SourceError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| match e.kind() {
            ErrorKind::NotFound => {
                SourceError::Refused(format!("source directory {} does not exist", self.dir.display()))
            }
            ErrorKind::PermissionDenied => {
                SourceError::Refused(format!("no permission to list source directory {}", self.dir.display()))
            }
            _ => self.io_error(format!("listing {}", self.dir.display()), e),
        })?;
        let mut listing = Listing::default();
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error(format!("listing {}", self.dir.display()), e))?;
            let raw = entry.file_name();
            let Some(name) = raw.to_str() else {
                listing
                    .ignored
                    .push(Ignored::new(raw.to_string_lossy(), IgnoreReason::NotUtf8));
                continue;
            };
            let stat = |follow: bool| {
                if follow {
                    fs::metadata(entry.path())
                } else {
                    entry.metadata()
                }
            };
            // DirEntry::metadata does not follow symlinks: a link is a link
            // here, as on SFTP, unless following them is asked for.
            let meta = match stat(false) {
                Ok(m) if m.file_type().is_symlink() && self.follow_symlinks => stat(true),
                other => other,
            };
            let meta = match meta {
                Ok(m) => m,
                // Removed between readdir and stat: simply not in this listing.
                Err(e) if e.kind() == ErrorKind::NotFound && entry.path().symlink_metadata().is_err() => continue,
                // A dangling link that is followed.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    listing.ignored.push(Ignored::new(name, IgnoreReason::Symlink));
                    continue;
                }
                Err(e) => return Err(self.io_error(format!("stat {}", entry.path().display()), e)),
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                let reason = if kind.is_symlink() || entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    IgnoreReason::Symlink
                } else {
                    IgnoreReason::NotRegular
                };
                listing.ignored.push(Ignored::new(name, reason));
                continue;
            }
            listing.files.push(RemoteFile {
                name: name.to_string(),
                size: meta.len(),
                mtime: unix_secs(
                    meta.modified()
                        .map_err(|e| self.io_error(format!("mtime of {}", entry.path().display()), e))?,
                ),
            });
        }
        Ok(listing)
    }

    fn fetch(&mut self, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError> {
        check_name(&file.name)?;
        let path = self.dir.join(&file.name);
        let gone_or_io = |e: io::Error, what: &str| {
            if e.kind() == ErrorKind::NotFound {
                SourceError::Gone {
                    name: file.name.clone(),
                }
            } else {
                SourceError::Io {
                    context: format!("{what} {}", path.display()),
                    source: e,
                }
            }
        };
        let (size, mtime) = stat(&path).map_err(|e| gone_or_io(e, "stat"))?;
        check_unchanged(file, size, mtime, "before reading")?;
        let mut src = File::open(&path).map_err(|e| gone_or_io(e, "open"))?;
        let (copied, sha256) = stage(&mut src, staging, READ_BUFFER, file).map_err(|e| match e {
            StageError::Read(e) => gone_or_io(e, "read"),
            StageError::Write(e) => SourceError::Staging {
                path: staging.to_path_buf(),
                source: e,
            },
        })?;
        drop(src);
        let (size, mtime) = stat(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => SourceError::Changed {
                name: file.name.clone(),
                what: "removed while being read".into(),
            },
            _ => gone_or_io(e, "stat"),
        })?;
        check_unchanged(file, size, mtime, "after reading")?;
        fetched(file, staging, copied, sha256)
    }

    fn delete(&mut self, name: &str) -> Result<(), SourceError> {
        check_name(name)?;
        let path = self.dir.join(name);
        fs::remove_file(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => SourceError::Gone { name: name.into() },
            _ => self.io_error(format!("deleting {}", path.display()), e),
        })
    }

    fn move_to(&mut self, name: &str, dir: &str) -> Result<String, SourceError> {
        check_name(name)?;
        let src = self.dir.join(name);
        let target_dir = self.resolve(dir);
        fs::create_dir_all(&target_dir).map_err(|e| self.io_error(format!("creating {}", target_dir.display()), e))?;
        for n in 0..=MAX_COLLISION_SUFFIX {
            let dst = target_dir.join(collision_name(name, n));
            match place_no_clobber(&src, &dst) {
                Ok(true) => return Ok(dst.display().to_string()),
                Ok(false) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound && !src.exists() => {
                    return Err(SourceError::Gone { name: name.into() })
                }
                Err(e) => return Err(self.io_error(format!("moving {} to {}", src.display(), dst.display()), e)),
            }
        }
        Err(SourceError::Refused(format!(
            "cannot move {name} into {}: {MAX_COLLISION_SUFFIX} names taken",
            target_dir.display()
        )))
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.dir.display())
    }
}

/// Moves `src` to `dst` unless `dst` exists (then returns `Ok(false)`).
///
/// A hard link fails atomically if the target exists, so two movers can never
/// overwrite each other's file; the source name is removed only once the link
/// exists. Where hard links are impossible (another file system, or one
/// without links) the bytes are copied into a file created with `create_new`,
/// synced, and only then is the source removed.
fn place_no_clobber(src: &Path, dst: &Path) -> io::Result<bool> {
    match fs::hard_link(src, dst) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(e),
        Err(_) => {
            let mut from = File::open(src)?;
            let mut to = match OpenOptions::new().write(true).create_new(true).open(dst) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(e),
            };
            io::copy(&mut from, &mut to)?;
            to.sync_all()?;
        }
    }
    fs::remove_file(src)?;
    Ok(true)
}

fn stat(path: &Path) -> io::Result<(u64, i64)> {
    let meta = fs::metadata(path)?;
    Ok((meta.len(), unix_secs(meta.modified()?)))
}

/// Whole seconds since the Unix epoch, negative before it (floor), matching
/// what SFTP reports.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unix_secs_floors_before_the_epoch() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }
}
