//! `audit.flush_interval`: lines gathered in memory and written in batches by one thread.
//!
//! A request's line is copied into the shared buffer under a lock held only for the copy;
//! the `vecgate-audit` thread writes the buffer out every interval, and a request whose line
//! fills the buffer writes it out itself. Every batch is whole lines, written in one piece by
//! the [`Sink`]. What a failed write held is lost and counted through [`LostLines`]; dropping
//! the log (or [`Buffered::flush`]) writes what is left.

use super::sink::Sink;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Told how many lines a failed write lost (the caller counts them as audit failures).
pub type LostLines = Box<dyn Fn(usize) + Send + Sync>;

/// Bytes gathered before a batch is written without waiting for the interval (Envoy's
/// default buffer for a file access log).
const BUFFER_BYTES: usize = 64 * 1024;

pub(super) struct Buffered {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    sink: Sink,
    pending: Mutex<Pending>,
    /// Set when the log is dropped; the flusher then writes what is left and ends.
    stopping: Mutex<bool>,
    wake: Condvar,
    lost: LostLines,
}

struct Pending {
    bytes: Vec<u8>,
    lines: usize,
}

impl Pending {
    /// An empty buffer with room for a whole batch, so it is not regrown after each write.
    fn empty() -> Pending {
        Pending { bytes: Vec::with_capacity(BUFFER_BYTES), lines: 0 }
    }
}

impl Buffered {
    pub(super) fn start(sink: Sink, interval: Duration, lost: LostLines) -> std::io::Result<Buffered> {
        let shared = Arc::new(Shared {
            sink,
            pending: Mutex::new(Pending::empty()),
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            lost,
        });
        let flushing = shared.clone();
        let flusher = std::thread::Builder::new().name("vecgate-audit".into()).spawn(move || {
            let mut stopping = lock(&flushing.stopping);
            while !*stopping {
                stopping = flushing.wake.wait_timeout(stopping, interval).unwrap_or_else(|e| e.into_inner()).0;
                flushing.flush();
            }
        })?;
        Ok(Buffered { shared, flusher: Some(flusher) })
    }

    /// Adds one line; writes the buffer first if the line would overflow it.
    pub(super) fn push(&self, line: &[u8]) {
        let full = {
            let mut pending = lock(&self.shared.pending);
            let full = (pending.bytes.len() + line.len() > BUFFER_BYTES && pending.lines > 0)
                .then(|| std::mem::replace(&mut *pending, Pending::empty()));
            pending.bytes.extend_from_slice(line);
            pending.lines += 1;
            full
        };
        if let Some(full) = full {
            self.shared.write(&full);
        }
    }

    /// Writes what is gathered now.
    pub(super) fn flush(&self) {
        self.shared.flush();
    }
}

impl Shared {
    fn flush(&self) {
        let batch = {
            let mut pending = lock(&self.pending);
            if pending.lines == 0 {
                return;
            }
            std::mem::replace(&mut *pending, Pending::empty())
        };
        self.write(&batch);
    }

    fn write(&self, batch: &Pending) {
        if let Err(e) = self.sink.write(&batch.bytes) {
            tracing::error!("writing the audit log failed, {} lines lost: {e}", batch.lines);
            (self.lost)(batch.lines);
        }
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.shared.flush();
    }
}

/// A lock poisoned by a panic elsewhere still guards whole lines: use it as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
