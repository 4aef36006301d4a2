//! Kafka clients whose close costs their owner nothing.

use std::ops::Deref;

/// A short-lived client, closed on a thread of its own when dropped.
///
/// Closing a librdkafka client can wait: rust-rdkafka's `AdminClient` joins
/// its polling thread, which polls in 100 ms steps, and a consumer with a
/// `group.id` waits for its group handler to stop (0 to 100 ms measured).
/// The service is done with such a client once it has its answer, and
/// nothing depends on the close: on the caller's thread, each of these waits
/// fell between the launch and the first file.
pub struct Detached<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Detached<T> {
    /// Wraps `client`.
    pub fn new(client: T) -> Self {
        Detached(Some(client))
    }
}

impl<T: Send + 'static> Deref for Detached<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("the client is taken only when dropped")
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Should the thread not start, the closure and the client in it
            // are dropped here, waiting as before.
            let _ = std::thread::Builder::new()
                .name("client-close".into())
                .spawn(move || drop(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Blocks its drop until told to finish.
    struct SlowClose(mpsc::Receiver<()>, mpsc::Sender<()>);

    impl Drop for SlowClose {
        fn drop(&mut self) {
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            let _ = self.1.send(());
        }
    }

    #[test]
    fn a_dropped_client_closes_on_another_thread_without_holding_up_the_caller() {
        let (release, wait) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        drop(Detached::new(SlowClose(wait, closed_tx)));
        // The caller is back while the close is still blocked...
        assert!(closed.try_recv().is_err());
        release.send(()).unwrap();
        // ...and the close still happens.
        closed.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
