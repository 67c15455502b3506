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
use std::sync::OnceLock;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

static COUNT: OnceLock<usize> = OnceLock::new();

/// How many workers serve the proxy port: `limits.workers`, else one per core.
pub fn count() -> usize {
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sets [`count`] from `limits.workers`, once per process and before any [`PerWorker`] is
/// made; `false` if the count was already fixed otherwise.
pub fn configure(workers: Option<usize>) -> bool {
    match workers {
        Some(n) => COUNT.set(n.max(1)).is_ok() || count() == n.max(1),
        None => true,
    }
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
    /// `make` is called once per worker and once for the other threads.
    pub fn new(mut make: impl FnMut() -> T) -> PerWorker<T> {
        PerWorker { slots: (0..=count()).map(|_| make()).collect() }
    }

    /// This thread's value.
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
        let values = PerWorker::new(|| counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        assert_eq!(values.slots.len(), count() + 1);
        assert_eq!(*values.get(), 0);
        let seen: Vec<usize> = std::thread::scope(|s| {
            (1..=count())
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
        assert_eq!(seen, (1..=count()).collect::<Vec<_>>());
        assert_eq!(std::thread::spawn(move || *values.get()).join().unwrap(), 0);
    }
}
