//! Hot reload of the policy directory: on file changes (debounced) and on SIGHUP.
//!
//! One thread owns the file watcher and performs every reload, so reloads never run
//! concurrently and never on the request path. A reload that fails keeps the last good
//! snapshot ([`PolicyStore::reload`]) and is reported to the callback as `Err`.
//!
//! Symlinks are followed the way the loader follows them: every directory reachable from the
//! policy directory, through symlinks too, is watched by its real path, and the set is
//! recomputed before each reload. A Kubernetes ConfigMap update (`..data` re-pointed to a new
//! `..<timestamp>` directory by an atomic rename) therefore shows up as events in the watched
//! top directory, and the new timestamped directory is watched from then on.
//!
//! Not handled: `policies.dir` itself being a symlink that is re-pointed (its parent is not
//! watched); SIGHUP still reloads then.

use super::store::PolicyStore;
use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Told the outcome of every reload: the new version, or why the set was refused.
pub type OnReload = Arc<dyn Fn(Result<u64, String>) + Send + Sync>;

/// A burst of file events ends after this long without another one.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// A continuous stream of events still reloads after at most this many quiet periods.
const MAX_DEBOUNCE_PERIODS: u32 = 8;

/// Upper bound on watched directories, against runaway symlink trees.
const MAX_WATCHED_DIRS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch the policy directory {dir}: {source}")]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error("reloading on SIGHUP needs a Tokio runtime: {0}")]
    NoRuntime(tokio::runtime::TryCurrentError),
    #[error("cannot start the policy watcher thread: {0}")]
    Thread(std::io::Error),
}

/// What starts a reload.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet period that ends a burst of file events.
    pub debounce: Duration,
    /// Also reload on SIGHUP (needs a Tokio runtime; unix only).
    pub sighup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions { debounce: DEFAULT_DEBOUNCE, sighup: true }
    }
}

enum Message {
    FileEvent(notify::Result<notify::Event>),
    /// SIGHUP, or [`WatchHandle::request_reload`].
    ReloadRequest,
    Stop,
}

/// The running watcher. Dropping it stops the watcher thread and the SIGHUP listener.
pub struct WatchHandle {
    messages: Sender<Message>,
    thread: Option<JoinHandle<()>>,
    sighup_task: Option<tokio::task::JoinHandle<()>>,
}

impl WatchHandle {
    /// Reloads as SIGHUP does: on the watcher thread, without waiting for a quiet period.
    pub fn request_reload(&self) {
        let _ = self.messages.send(Message::ReloadRequest);
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(task) = self.sighup_task.take() {
            task.abort();
        }
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Watches the store's directory with [`WatchOptions::default`]: file changes debounced by
/// 250 ms, and SIGHUP. Must be called inside a Tokio runtime (for SIGHUP); once it returns,
/// the SIGHUP handler is installed.
pub fn spawn_policy_watcher(store: Arc<PolicyStore>, on_reload: OnReload) -> Result<WatchHandle, WatchError> {
    spawn_policy_watcher_with(store, on_reload, WatchOptions::default())
}

/// [`spawn_policy_watcher`] with explicit options.
pub fn spawn_policy_watcher_with(
    store: Arc<PolicyStore>,
    on_reload: OnReload,
    options: WatchOptions,
) -> Result<WatchHandle, WatchError> {
    let (messages, inbox) = mpsc::channel();
    let to_inbox = messages.clone();
    let watcher = notify::recommended_watcher(move |event| {
        let _ = to_inbox.send(Message::FileEvent(event));
    })
    .map_err(|source| WatchError::Watch { dir: store.dir().to_path_buf(), source })?;
    let mut watched = WatchedDirs { root: store.dir().to_path_buf(), watcher, dirs: BTreeSet::new() };
    watched.watch_root()?;
    watched.resync();

    let sighup_task = if options.sighup { Some(listen_for_sighup(messages.clone())?) } else { None };
    let thread = std::thread::Builder::new()
        .name("vecgate-policy-watch".into())
        .spawn(move || run(&store, &*on_reload, watched, &inbox, options.debounce))
        .map_err(WatchError::Thread)?;
    Ok(WatchHandle { messages, thread: Some(thread), sighup_task })
}

/// Reloads the store now, logs the outcome and tells `on_reload`. Used by every trigger.
pub fn reload_now(store: &PolicyStore, on_reload: &dyn Fn(Result<u64, String>)) -> Result<u64, String> {
    let outcome = match store.reload() {
        Ok(version) => {
            tracing::info!(version, dir = %store.dir().display(), "policies reloaded");
            for warning in &store.snapshot().warnings {
                tracing::warn!("policy: {warning}");
            }
            Ok(version)
        }
        Err(errors) => {
            let kept = store.snapshot().version;
            tracing::error!(
                kept_version = kept,
                "policy reload refused, keeping the last good set:\n{errors}"
            );
            Err(errors.to_string())
        }
    };
    on_reload(outcome.clone());
    outcome
}

/// Installs the SIGHUP handler now (so SIGHUP no longer terminates the process) and forwards
/// each signal to the watcher thread.
#[cfg(unix)]
fn listen_for_sighup(messages: Sender<Message>) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Handle::try_current().map_err(WatchError::NoRuntime)?;
    let mut hangups = {
        let _entered = runtime.enter();
        signal(SignalKind::hangup()).map_err(WatchError::Signal)?
    };
    Ok(runtime.spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policies");
            if messages.send(Message::ReloadRequest).is_err() {
                return;
            }
        }
    }))
}

#[cfg(not(unix))]
fn listen_for_sighup(_messages: Sender<Message>) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    Err(WatchError::Signal(std::io::Error::other("SIGHUP exists only on unix")))
}

/// The watcher thread: waits for a trigger, lets a burst of file events settle, reloads.
fn run(
    store: &PolicyStore,
    on_reload: &dyn Fn(Result<u64, String>),
    mut watched: WatchedDirs,
    inbox: &Receiver<Message>,
    debounce: Duration,
) {
    loop {
        match inbox.recv() {
            Err(_) | Ok(Message::Stop) => return,
            Ok(Message::ReloadRequest) => {}
            Ok(Message::FileEvent(event)) => {
                if !is_change(&event) {
                    continue;
                }
                if wait_for_quiet(inbox, debounce) == Settled::Stop {
                    return;
                }
            }
        }
        // Watch new directories first, so a change made while reloading is not missed.
        watched.resync();
        let _ = reload_now(store, on_reload);
    }
}

#[derive(PartialEq)]
enum Settled {
    Quiet,
    Stop,
}

/// Swallows messages until none arrives for `debounce` (bounded by
/// [`MAX_DEBOUNCE_PERIODS`]); a reload request in the burst is covered by the coming reload.
fn wait_for_quiet(inbox: &Receiver<Message>, debounce: Duration) -> Settled {
    let deadline = Instant::now() + debounce * MAX_DEBOUNCE_PERIODS;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Settled::Quiet;
        }
        match inbox.recv_timeout(debounce.min(left)) {
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return Settled::Stop,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return Settled::Quiet,
        }
    }
}

/// Does the event mean policy content may have changed? Opens, reads and access-time updates
/// (our own reloads cause them) do not.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        // A lost or overflowing watch: reload and re-watch to be safe.
        Err(e) => {
            tracing::warn!("policy watcher: {e}");
            true
        }
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
            _ => true,
        },
    }
}

/// The directories watched, by real path.
struct WatchedDirs {
    root: PathBuf,
    watcher: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl WatchedDirs {
    /// The policy directory itself must be watchable; everything below is best effort.
    fn watch_root(&mut self) -> Result<(), WatchError> {
        let real = std::fs::canonicalize(&self.root)
            .map_err(|e| WatchError::Watch { dir: self.root.clone(), source: notify::Error::io(e) })?;
        self.watcher
            .watch(&real, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch { dir: self.root.clone(), source })?;
        self.dirs.insert(real);
        Ok(())
    }

    /// Watches every directory now reachable from the root and stops watching the others.
    fn resync(&mut self) {
        let wanted = reachable_dirs(&self.root);
        for gone in self.dirs.difference(&wanted) {
            // Deleted directories lose their watch by themselves.
            let _ = self.watcher.unwatch(gone);
        }
        let mut now_watched = BTreeSet::new();
        for dir in &wanted {
            if self.dirs.contains(dir) {
                now_watched.insert(dir.clone());
                continue;
            }
            match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    now_watched.insert(dir.clone());
                }
                // It may have vanished since the walk; the next event resyncs again.
                Err(e) => tracing::debug!("policy watcher: not watching {}: {e}", dir.display()),
            }
        }
        self.dirs = now_watched;
    }
}

/// Real paths of the root, of every directory below it (through symlinks, hidden ones
/// included), and of the directories holding the targets of symlinked files.
fn reachable_dirs(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut target_dirs = BTreeSet::new();
    let mut pending: Vec<PathBuf> = Vec::new();
    if let Ok(real) = std::fs::canonicalize(root) {
        pending.push(real);
    }
    while let Some(dir) = pending.pop() {
        if found.len() >= MAX_WATCHED_DIRS {
            tracing::warn!(
                "policy watcher: more than {MAX_WATCHED_DIRS} directories; watching the first ones only"
            );
            break;
        }
        if !found.insert(dir.clone()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(real) = std::fs::canonicalize(&path) else { continue };
            if real.is_dir() {
                if !found.contains(&real) {
                    pending.push(real);
                }
            } else if path.is_symlink() {
                // Watched, not walked: it may be a large directory outside the policy tree.
                if let Some(parent) = real.parent() {
                    target_dirs.insert(parent.to_path_buf());
                }
            }
        }
    }
    found.extend(target_dirs);
    found
}
