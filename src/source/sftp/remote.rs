//! What is done to files on the server: stat, fetch into staging (hashed on
//! the way), make directories, move.

use super::*;

/// Remote reads go through a 2 MiB buffer: libssh2 keeps requests in flight in
/// proportion to the read size, and small reads are several times slower than
/// OpenSSH's `sftp` (see the field notes).
pub(super) const READ_BUFFER: usize = 2 << 20;

/// Size and mtime from a stat; a server that omits them cannot support change
/// detection, so the file is treated as unusable.
pub(super) fn size_mtime(stat: &FileStat) -> Option<(u64, i64)> {
    Some((stat.size?, i64::try_from(stat.mtime?).ok()?))
}

pub(super) fn stat_size_mtime(
    sftp: &Sftp,
    cfg: &SftpConfig,
    path: &Path,
    file: &RemoteFile,
    when: &str,
) -> Result<(u64, i64), SourceError> {
    let stat = sftp.stat(path).map_err(|e| {
        if is_missing(&e) && when == "after reading" {
            SourceError::Changed {
                name: file.name.clone(),
                what: "removed while being read".into(),
            }
        } else {
            sftp_error(cfg, e, "stat", path)
        }
    })?;
    size_mtime(&stat).ok_or_else(|| SourceError::Io {
        context: format!("stat {} on {}", path.display(), cfg.endpoint()),
        source: io::Error::other("the server reported no size or mtime"),
    })
}

pub(super) fn fetch_once(
    sftp: &Sftp,
    cfg: &SftpConfig,
    file: &RemoteFile,
    staging: &Path,
) -> Result<Fetched, SourceError> {
    let path = cfg.remote_path(&file.name);
    let (size, mtime) = stat_size_mtime(sftp, cfg, &path, file, "before reading")?;
    check_unchanged(file, size, mtime, "before reading")?;
    let mut remote = sftp.open(&path).map_err(|e| sftp_error(cfg, e, "opening", &path))?;
    let (copied, sha256) = stage(&mut remote, staging, READ_BUFFER, file).map_err(|e| match e {
        // The io::Error from ssh2 no longer carries the libssh2 code; a failed
        // read mid-transfer is almost always the connection, and reconnecting
        // then refetching is right in the rare other cases too.
        StageError::Read(e) => cfg.connection_error(format!("reading {}: {e}", path.display())),
        StageError::Write(e) => SourceError::Staging {
            path: staging.to_path_buf(),
            source: e,
        },
    })?;
    drop(remote);
    let (size, mtime) = stat_size_mtime(sftp, cfg, &path, file, "after reading")?;
    check_unchanged(file, size, mtime, "after reading")?;
    fetched(file, staging, copied, sha256)
}

pub(super) fn is_dir(sftp: &Sftp, cfg: &SftpConfig, path: &Path) -> Result<bool, SourceError> {
    match sftp.stat(path) {
        Ok(stat) => Ok(stat.is_dir()),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(sftp_error(cfg, e, "stat", path)),
    }
}

pub(super) fn exists(sftp: &Sftp, cfg: &SftpConfig, path: &Path) -> Result<bool, SourceError> {
    match sftp.lstat(path) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(sftp_error(cfg, e, "stat", path)),
    }
}

/// `mkdir -p` over SFTP. A mkdir that fails because another process created
/// the directory meanwhile is fine.
pub(super) fn mkdir_all(sftp: &Sftp, cfg: &SftpConfig, dir: &Path) -> Result<(), SourceError> {
    if is_dir(sftp, cfg, dir)? {
        return Ok(());
    }
    let mut partial = PathBuf::new();
    for component in dir.components() {
        partial.push(component);
        if is_dir(sftp, cfg, &partial)? {
            continue;
        }
        if let Err(e) = sftp.mkdir(&partial, 0o755) {
            if !is_dir(sftp, cfg, &partial)? {
                return Err(sftp_error(cfg, e, "creating directory", &partial));
            }
        }
    }
    Ok(())
}

pub(super) fn move_once(sftp: &Sftp, cfg: &SftpConfig, name: &str, dir: &str) -> Result<String, SourceError> {
    let src = cfg.remote_path(name);
    let target_dir = if dir.starts_with('/') {
        PathBuf::from(dir)
    } else {
        cfg.remote_path(dir)
    };
    mkdir_all(sftp, cfg, &target_dir)?;
    for n in 0..=MAX_COLLISION_SUFFIX {
        let dst = target_dir.join(collision_name(name, n));
        // Checked first because some servers' rename overwrites; OpenSSH's
        // refuses an existing target (checked again below for a racing mover).
        if exists(sftp, cfg, &dst)? {
            continue;
        }
        // No OVERWRITE flag: on SFTP v5+ servers it would clobber `dst`.
        match sftp.rename(&src, &dst, Some(RenameFlags::ATOMIC | RenameFlags::NATIVE)) {
            Ok(()) => return Ok(dst.display().to_string()),
            Err(e) if is_missing(&e) => return Err(SourceError::Gone { name: name.into() }),
            Err(e) => {
                if matches!(e.code(), ErrorCode::SFTP(_)) && exists(sftp, cfg, &dst)? {
                    continue;
                }
                return Err(sftp_error(cfg, e, &format!("moving to {}", dst.display()), &src));
            }
        }
    }
    Err(SourceError::Refused(format!(
        "cannot move {name} into {}: {MAX_COLLISION_SUFFIX} names taken",
        target_dir.display()
    )))
}
