//! libssh2's error codes (`ssh2` does not re-export them) and how an error
//! is sorted: the connection, the file missing, or the server refusing.

use super::*;

// libssh2 error codes (libssh2.h / libssh2_sftp.h); `ssh2` does not re-export them.
pub(super) const LIBSSH2_ERROR_KEX_FAILURE: i32 = -5;
pub(super) const LIBSSH2_ERROR_SOCKET_SEND: i32 = -7;
pub(super) const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
pub(super) const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
pub(super) const LIBSSH2_ERROR_PASSWORD_EXPIRED: i32 = -15;
pub(super) const LIBSSH2_ERROR_FILE: i32 = -16;
pub(super) const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;
pub(super) const LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;
pub(super) const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
pub(super) const LIBSSH2_ERROR_METHOD_NOT_SUPPORTED: i32 = -33;
pub(super) const LIBSSH2_ERROR_EAGAIN: i32 = -37;
pub(super) const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;
pub(super) const LIBSSH2_ERROR_BAD_SOCKET: i32 = -45;
pub(super) const LIBSSH2_ERROR_KEYFILE_AUTH_FAILED: i32 = -48;
pub(super) const LIBSSH2_ERROR_ALGO_UNSUPPORTED: i32 = -51;
pub(super) const LIBSSH2_FX_NO_SUCH_FILE: i32 = 2;
pub(super) const LIBSSH2_FX_PERMISSION_DENIED: i32 = 3;
pub(super) const LIBSSH2_FX_NO_CONNECTION: i32 = 6;
pub(super) const LIBSSH2_FX_CONNECTION_LOST: i32 = 7;
pub(super) const LIBSSH2_FX_NO_SUCH_PATH: i32 = 10;

pub(super) fn is_transport_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Session(
            LIBSSH2_ERROR_SOCKET_SEND
                | LIBSSH2_ERROR_SOCKET_RECV
                | LIBSSH2_ERROR_SOCKET_DISCONNECT
                | LIBSSH2_ERROR_SOCKET_TIMEOUT
                | LIBSSH2_ERROR_TIMEOUT
                | LIBSSH2_ERROR_BAD_SOCKET
                | LIBSSH2_ERROR_EAGAIN
        )
    )
}

/// Sorts an error from an SFTP call by what the caller should do. Any
/// session-level (transport) error means the session is unusable, so it is a
/// connection error; SFTP status codes concern the file.
pub(super) fn sftp_error(cfg: &SftpConfig, e: ssh2::Error, what: &str, path: &Path) -> SourceError {
    match e.code() {
        ErrorCode::Session(_) | ErrorCode::SFTP(LIBSSH2_FX_NO_CONNECTION | LIBSSH2_FX_CONNECTION_LOST) => {
            cfg.connection_error(format!("{what} {}: {e}", path.display()))
        }
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH) => SourceError::Gone {
            name: path.display().to_string(),
        },
        ErrorCode::SFTP(LIBSSH2_FX_PERMISSION_DENIED) => SourceError::Refused(format!(
            "permission denied: {what} {} as user {} on {}",
            path.display(),
            cfg.user,
            cfg.endpoint()
        )),
        ErrorCode::SFTP(_) => SourceError::Io {
            context: format!("{what} {} on {}", path.display(), cfg.endpoint()),
            source: io::Error::other(e),
        },
    }
}

pub(super) fn is_missing(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH)
    )
}
