//! Every Kafka error the sink sees is sorted here, once, into what to do next.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What the caller does after a Kafka error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Call the same operation again (librdkafka says it is retriable).
    Retry,
    /// Abort the open transaction, rewind the input to the transaction's first
    /// row and produce the chunk again. Nothing of the aborted chunk is visible
    /// to read_committed consumers, so replaying cannot duplicate.
    AbortAndReplay,
    /// The broker refuses a record of the chunk and always will (too large,
    /// invalid, timestamp out of range): replaying cannot help. Abort the
    /// chunk and fail the file; the service goes on with the next one.
    Refused,
    /// The producer is unusable (fenced by another instance, unauthorized,
    /// misconfigured): stop the service with a non-zero exit.
    Fatal,
}

/// Sorts a Kafka error. Anything unrecognised is fatal: guessing "retry" on an
/// unknown error risks a loop, and a restart re-runs recovery safely.
pub fn classify(err: &KafkaError) -> Action {
    match err {
        KafkaError::Transaction(e) => {
            if e.is_fatal() {
                Action::Fatal
            } else if e.txn_requires_abort() {
                Action::AbortAndReplay
            } else if e.is_retriable() {
                Action::Retry
            } else {
                classify_code(e.code())
            }
        }
        // A flush that timed out or failed inside commit: the transaction cannot
        // be committed as is.
        KafkaError::Flush(_) => Action::AbortAndReplay,
        KafkaError::MessageProduction(code) => classify_code(*code),
        _ => Action::Fatal,
    }
}

/// Delivery-report and produce error codes.
pub fn classify_code(code: RDKafkaErrorCode) -> Action {
    use RDKafkaErrorCode as C;
    match code {
        C::ProducerFenced
        | C::Fenced
        | C::InvalidProducerEpoch
        | C::TransactionalIdAuthorizationFailed
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::Fatal
        | C::UnsupportedVersion
        | C::InvalidTransactionTimeout => Action::Fatal,
        // The record itself can never be written: replaying would fail the
        // same way. Records are checked against the size limits before they
        // are sent, so this is a limit lowered under us or a broker rule we
        // do not know; it is the file's problem, not the service's.
        C::MessageSizeTooLarge
        | C::MessageBatchTooLarge
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::InvalidTimestamp => Action::Refused,
        // A topic deleted under us: every file of its kind would fail. A
        // restart creates it again.
        C::UnknownTopic => Action::Fatal,
        _ => Action::AbortAndReplay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_and_authorization_are_fatal() {
        assert_eq!(classify_code(RDKafkaErrorCode::ProducerFenced), Action::Fatal);
        assert_eq!(
            classify_code(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
            Action::Fatal
        );
        assert_eq!(
            classify(&KafkaError::MessageProduction(
                RDKafkaErrorCode::TopicAuthorizationFailed
            )),
            Action::Fatal
        );
    }

    #[test]
    fn delivery_timeouts_and_broker_failover_replay_the_chunk() {
        assert_eq!(classify_code(RDKafkaErrorCode::MessageTimedOut), Action::AbortAndReplay);
        assert_eq!(
            classify_code(RDKafkaErrorCode::NotLeaderForPartition),
            Action::AbortAndReplay
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::BrokerTransportFailure),
            Action::AbortAndReplay
        );
        assert_eq!(
            classify(&KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)),
            Action::AbortAndReplay
        );
    }

    #[test]
    fn records_the_broker_can_never_accept_fail_the_file_not_the_service() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidTimestamp,
        ] {
            assert_eq!(classify_code(code), Action::Refused, "{code:?}");
            assert_eq!(
                classify(&KafkaError::MessageProduction(code)),
                Action::Refused,
                "{code:?}"
            );
        }
        assert_eq!(classify_code(RDKafkaErrorCode::UnknownTopic), Action::Fatal);
    }

    #[test]
    fn unknown_client_errors_are_fatal() {
        assert_eq!(classify(&KafkaError::Canceled), Action::Fatal);
    }
}
