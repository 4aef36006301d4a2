//! A file's turn among the files of its lane that other slots hold.
//!
//! Two slots may hold files of one kind at once, so that one file's rows are
//! produced while the previous file's last commit is in flight (each slot has
//! its own transactional producer). Commits still land in name order: a file
//! opens its first transaction only once the lane's previous file is in its
//! last chunk, and commits only once that file is done. Exactly-once does not
//! rest on this order (every file has its own checkpoint): only the order of
//! commits does.

/// What `produce_file` asks of the slots sharing its lane. The defaults
/// are those of a file alone in its lane.
pub trait Turn {
    /// Returns once this file may open a transaction: the lane's previous
    /// file has produced its last row, or is done.
    fn await_begin(&self) {}
    /// Returns once this file may commit: the lane's previous file is done.
    fn await_commit(&self) {}
    /// This file has produced its last row: the lane's next file may begin.
    fn last_chunk(&self) {}
    /// True once the file's shard belongs to another instance.
    fn handed_off(&self) -> bool {
        false
    }
}

/// A file no other slot's file comes before, whose lane stays ours.
#[cfg(test)]
pub struct Alone;

#[cfg(test)]
impl Turn for Alone {}
