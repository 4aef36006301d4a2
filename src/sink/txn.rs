//! The seam between the engine and Kafka: what the engine asks of a
//! transactional sink. The rdkafka producer ([`TxnProducer`]) implements it;
//! the engine's unit tests drive a scripted fake (`fake::ScriptedSink`, compiled for tests).

use super::producer::{OutRecord, SinkError, TxnProducer};

/// A sink that makes records visible in all-or-nothing transactions. Every
/// error carries the [`Action`](super::Action) it calls for.
pub trait TransactionalSink {
    /// Opens a transaction.
    fn begin(&mut self) -> Result<(), SinkError>;
    /// Enqueues one record in the open transaction; a full queue is waited
    /// out (the backpressure that keeps memory flat).
    fn send(&mut self, rec: OutRecord<'_>) -> Result<(), SinkError>;
    /// Serves delivery reports without blocking; called now and then while
    /// producing.
    fn poll(&self);
    /// Failure contract: Ok means every record sent since `begin` is durable
    /// and visible to read_committed consumers; an error with a non-fatal
    /// action means none of them is; a fatal one, that the outcome is known
    /// only to the next start.
    fn commit(&mut self) -> Result<(), SinkError>;
    /// Ends the open transaction so that none of its records is ever visible.
    fn abort(&mut self) -> Result<(), SinkError>;
    /// Whether a broker answers now: tells an outage from a failure of one
    /// file's records.
    fn brokers_reachable(&self) -> bool;
}

impl TransactionalSink for TxnProducer {
    fn begin(&mut self) -> Result<(), SinkError> {
        TxnProducer::begin(self)
    }

    fn send(&mut self, rec: OutRecord<'_>) -> Result<(), SinkError> {
        TxnProducer::send(self, rec)
    }

    fn poll(&self) {
        TxnProducer::poll(self)
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        TxnProducer::commit(self)
    }

    fn abort(&mut self) -> Result<(), SinkError> {
        TxnProducer::abort(self)
    }

    fn brokers_reachable(&self) -> bool {
        TxnProducer::brokers_reachable(self)
    }
}

#[cfg(test)]
pub mod fake {
    //! A transactional sink that keeps records in memory and fails the calls
    //! a test scripts, for unit tests of the engine's every branch.

    use std::collections::HashMap;

    use super::TransactionalSink;
    use crate::sink::producer::{OutRecord, SinkError};
    use crate::sink::Action;

    /// A call on the sink.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Op {
        /// [`TransactionalSink::begin`].
        Begin,
        /// [`TransactionalSink::send`].
        Send,
        /// [`TransactionalSink::commit`].
        Commit,
        /// [`TransactionalSink::abort`].
        Abort,
    }

    /// A record as sent: topic, key, value.
    pub type Sent = (String, Vec<u8>, Vec<u8>);

    /// In-memory transactions; the n-th call of an op (from 1) fails when
    /// scripted to.
    #[derive(Default)]
    pub struct ScriptedSink {
        failures: HashMap<(Op, u64), SinkError>,
        calls: HashMap<Op, u64>,
        open: Vec<Sent>,
        /// Records of committed transactions, in order.
        pub committed: Vec<Sent>,
        /// Every call, in order.
        pub log: Vec<Op>,
        /// What `brokers_reachable` answers.
        pub unreachable: bool,
    }

    impl ScriptedSink {
        /// Fails the `nth` call of `op` (from 1) with `err`.
        pub fn fail(mut self, op: Op, nth: u64, err: SinkError) -> Self {
            self.failures.insert((op, nth), err);
            self
        }

        /// Fails the `nth` call of `op` with an error calling for `action`.
        pub fn fail_with(self, op: Op, nth: u64, action: Action) -> Self {
            let err = SinkError::Delivery {
                failed: 1,
                first: format!("scripted {action:?}"),
                action,
            };
            self.fail(op, nth, err)
        }

        /// How many times `op` was called.
        pub fn calls(&self, op: Op) -> u64 {
            self.calls.get(&op).copied().unwrap_or(0)
        }

        fn call(&mut self, op: Op) -> Result<(), SinkError> {
            self.log.push(op);
            let n = self.calls.entry(op).or_default();
            *n += 1;
            match self.failures.remove(&(op, *n)) {
                Some(err) => Err(err),
                None => Ok(()),
            }
        }
    }

    impl TransactionalSink for ScriptedSink {
        fn begin(&mut self) -> Result<(), SinkError> {
            self.call(Op::Begin)?;
            self.open.clear();
            Ok(())
        }

        fn send(&mut self, rec: OutRecord<'_>) -> Result<(), SinkError> {
            self.call(Op::Send)?;
            self.open
                .push((rec.topic.to_string(), rec.key.to_vec(), rec.value.to_vec()));
            Ok(())
        }

        fn poll(&self) {}

        fn commit(&mut self) -> Result<(), SinkError> {
            self.call(Op::Commit)?;
            self.committed.append(&mut self.open);
            Ok(())
        }

        fn abort(&mut self) -> Result<(), SinkError> {
            self.call(Op::Abort)?;
            self.open.clear();
            Ok(())
        }

        fn brokers_reachable(&self) -> bool {
            !self.unreachable
        }
    }
}
