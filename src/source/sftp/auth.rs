//! Logging in: a password or a private key (with its passphrase), never
//! echoed in a message.

use super::*;

/// Public key first (the stronger method), then password. A refusal names the
/// user, endpoint and methods tried, never a secret.
pub(super) fn authenticate(
    cfg: &SftpConfig,
    session: &Session,
    password: Option<&str>,
    passphrase: Option<&str>,
) -> Result<(), SourceError> {
    let mut tried = Vec::new();
    if let Some(key) = &cfg.private_key {
        tried.push("publickey");
        let result = session.userauth_pubkey_file(&cfg.user, None, &key.path, passphrase);
        match result {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => match e.code() {
                ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED | LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) => {}
                ErrorCode::Session(LIBSSH2_ERROR_FILE | LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) => {
                    return Err(SourceError::Refused(format!(
                        "cannot use private key file {}: {} (unreadable, unsupported format, \
                         or wrong passphrase)",
                        key.path.display(),
                        e.message()
                    )))
                }
                _ => return Err(auth_transport_error(cfg, &e)),
            },
        }
    }
    if let Some(password) = password {
        tried.push("password");
        match session.userauth_password(&cfg.user, password) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => match e.code() {
                ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED) => {}
                ErrorCode::Session(LIBSSH2_ERROR_PASSWORD_EXPIRED) => {
                    return Err(SourceError::Refused(format!(
                        "password of user {} on {} has expired",
                        cfg.user,
                        cfg.endpoint()
                    )))
                }
                _ => return Err(auth_transport_error(cfg, &e)),
            },
        }
    }
    // What the server would take tells a wrong secret from a wrong method
    // (a password against a key-only server).
    let accepted = session
        .auth_methods(&cfg.user)
        .map(|m| format!("; the server accepts: {}", m.replace(',', ", ")))
        .unwrap_or_default();
    Err(SourceError::Refused(format!(
        "authentication failed for user {} on {} (tried: {}{accepted})",
        cfg.user,
        cfg.endpoint(),
        tried.join(", ")
    )))
}

/// An error during authentication that is not a "no": a dropped or timed-out
/// connection is worth retrying; anything else will fail the same way again.
pub(super) fn auth_transport_error(cfg: &SftpConfig, e: &ssh2::Error) -> SourceError {
    if is_transport_code(e.code()) {
        cfg.connection_error(format!("during authentication: {e}"))
    } else {
        SourceError::Refused(format!(
            "authentication of user {} on {} failed: {}",
            cfg.user,
            cfg.endpoint(),
            e.message()
        ))
    }
}
