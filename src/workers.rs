//! The proxy port's worker threads, as far as the rest of the crate needs to know them.
//!
//! The proxy port is served by one single-threaded runtime per core ([`count`]), each on its
//! own thread and given its connections in turn by one accept loop: nginx's model, with no
//! work stealing and no wake-ups across threads on the request path (`crate::server` starts
//! them). A task spawned
//! while serving a request, such as a pooled client's connection, runs on the runtime that
//! spawned it; so each pooled client keeps one pool per worker ([`PerWorker`]), and a worker
//! only ever drives its own connections.
//!
//! Invariant: nothing that can block for longer than a computation runs on a worker thread;
//! the one such wait (fetching a JWKS key set for an unknown `kid`) is moved to the blocking
//! pool by the authenticate phase.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers serve the proxy port: `limits.workers` (`configured`), else one per core.
pub fn count(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// Marks this thread as worker `index` (1..=[`count`]); 0, every other thread's, is the default.
pub(crate) fn enter(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// One value per worker, plus one shared by every thread that is not a worker.
pub struct PerWorker<T> {
    slots: Box<[T]>,
}

impl<T> PerWorker<T> {
    /// `make` is called once for each of `workers` workers and once for the other threads.
    pub fn new(workers: usize, mut make: impl FnMut() -> T) -> PerWorker<T> {
        PerWorker { slots: (0..=workers).map(|_| make()).collect() }
    }

    /// This thread's value. A worker of a larger pool than this one was made for (another
    /// gateway in the same process) shares a slot with a worker of this one.
    pub fn get(&self) -> &T {
        let index = INDEX.with(Cell::get);
        &self.slots[index % self.slots.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_its_own_value_and_other_threads_share_one() {
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let workers = 3;
        let values = PerWorker::new(workers, || counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        assert_eq!(values.slots.len(), workers + 1);
        assert_eq!(*values.get(), 0);
        let seen: Vec<usize> = std::thread::scope(|s| {
            (1..=workers)
                .map(|i| {
                    let values = &values;
                    s.spawn(move || {
                        enter(i);
                        *values.get()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(seen, (1..=workers).collect::<Vec<_>>());
        assert_eq!(std::thread::spawn(move || *values.get()).join().unwrap(), 0);
    }
}
