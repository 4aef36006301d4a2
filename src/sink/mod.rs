//! The transactional Kafka sink: one producer per worker slot, every Kafka
//! error sorted into retry / abort-and-replay / fatal in one place
//! (`classify`), the checkpoint records that commit atomically with the rows,
//! topic creation, and the reachability probe.

pub mod certificate;
pub mod checkpoint;
pub mod classify;
pub mod client_log;
pub mod detached;
pub mod limits;
pub mod probe;
pub mod producer;
pub mod topic_end;
pub mod topics;
pub mod txn;

pub use checkpoint::{Checkpoint, CheckpointStore};
pub use classify::{classify, Action};
pub use producer::{KafkaConfig, SinkError, TxnProducer};
pub use txn::TransactionalSink;
