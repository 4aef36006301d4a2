//! No secret reaches any output (Kafka's, the SFTP password, the schema
//! registry's): not the error line that quotes librdkafka's
//! refusal of a property, not a log line at any level, not `check-config`
//! (no stack needed: the binary stops before connecting anywhere).

mod common;

use common::*;

const JAAS: &str =
    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="JAAS-S3CRET-1";"#;

fn run(args: &[&str], log: &str, format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(args)
        .args(["--kafka-config", &format!("sasl.jaas.config={JAAS}")])
        .args(["--kafka-config", "sasl.password=SASL-S3CRET-2"])
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("SFTP_PASSWORD", "SFTP-S3CRET-3")
        .env("CDR_FORMAT", "avro")
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1/apis/ccompat/v7")
        .env("SCHEMA_REGISTRY_USER", "svc")
        .env("SCHEMA_REGISTRY_PASSWORD", "REG-S3CRET-4")
        .env("CDR_LEDGER_DIR", dir.path())
        .env("CDR_LOCAL_DIR", dir.path())
        .env("RUST_LOG", log)
        .env("CDR_LOG_FORMAT", format)
        .output()
        .unwrap();
    output_text(&out)
}

#[test]
fn a_jaas_password_and_other_secrets_never_show_at_any_log_level_or_in_check_config() {
    for (log, format) in [
        ("info", "text"),
        ("debug", "text"),
        ("trace,librdkafka=debug", "text"),
        ("debug", "json"),
    ] {
        for args in [&["once"][..], &["check-config"][..]] {
            let text = run(args, log, format);
            assert!(
                text.contains("JAAS configuration is not supported") || text.contains("sasl.jaas.config"),
                "{text}"
            );
            if args == ["check-config"] {
                assert!(
                    text.contains("schema registry: FAILED"),
                    "the registry was asked: {text}"
                );
            }
            for secret in ["JAAS-S3CRET-1", "SASL-S3CRET-2", "SFTP-S3CRET-3", "REG-S3CRET-4"] {
                assert!(
                    !text.contains(secret),
                    "{secret} shown by {args:?} at {log} ({format}):\n{text}"
                );
            }
        }
    }
}
