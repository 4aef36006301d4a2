//! glibc's malloc gives each thread that meets contention an arena of its
//! own, up to eight per core, and keeps what is freed inside each. With
//! librdkafka's threads (several per producer, producers opened and closed
//! as files come) a group instance held 108 to 112 MiB where two arenas hold
//! 70 to 72 for the same files, at no measurable CPU cost; `once` is the same
//! either way (docs/performance.md, "Lean group instances").

/// Arenas when `MALLOC_ARENA_MAX` does not say otherwise.
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at `ARENAS`, unless `MALLOC_ARENA_MAX` is set
/// (glibc reads it itself). Call before any thread starts.
pub fn cap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; called
        // before any other thread exists, it races with no allocation.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
