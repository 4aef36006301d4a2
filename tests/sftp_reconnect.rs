//! SftpSource survives an sshd restart. In its own test binary because it
//! stops the stack's sshd, which would cut the connections of tests running in
//! parallel with it (cargo runs test binaries one after another).

mod common;
mod sftp_support;

use cdr_to_redpanda::source::sftp::SftpSource;
use cdr_to_redpanda::source::{Source, SourceError};
use sftp_support::{sha256_of, stack, stack_sh};

/// Restarts sshd even if an assertion fails, so later tests find it running.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        stack_sh(&["sshd-start"]);
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn fetch_after_an_sshd_restart_reconnects_and_succeeds() {
    let stack = stack();
    let dir = stack.test_dir("reconnect");
    dir.write("cdr_data_1.csv", b"before the restart\n");
    dir.write("cdr_data_2.csv", b"after the restart\n");
    let staging = tempfile::tempdir().unwrap();

    let mut source = SftpSource::connect(stack.password_config(&dir)).unwrap();
    let listing = source.list().unwrap();
    let file = |name: &str| listing.files.iter().find(|f| f.name == name).unwrap().clone();
    let first = source
        .fetch(&file("cdr_data_1.csv"), &staging.path().join("1"))
        .unwrap();
    assert_eq!(first.sha256, sha256_of(b"before the restart\n"));

    // sshd-stop also ends the open sessions, like a real server outage.
    {
        let _restart = StartOnDrop;
        stack_sh(&["sshd-stop"]);
    }
    assert!(source.is_connected(), "the source has not noticed yet");
    let second = source
        .fetch(&file("cdr_data_2.csv"), &staging.path().join("2"))
        .unwrap();
    assert_eq!(second.sha256, sha256_of(b"after the restart\n"));

    // While the server is down the failure is transient and says so; once it
    // is back the next call connects again.
    {
        let _restart = StartOnDrop;
        stack_sh(&["sshd-stop"]);
        match source.list() {
            Err(e @ SourceError::Connection { .. }) => {
                assert!(e.is_transient());
                assert!(!e.to_string().contains(&stack.password));
            }
            other => panic!("expected a connection error, got {other:?}"),
        }
        assert!(!source.is_connected(), "the dead session was dropped");
    }
    assert_eq!(source.list().unwrap().files.len(), 2);
}
