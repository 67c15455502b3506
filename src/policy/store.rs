//! The live policy set: an immutable [`Snapshot`] behind an `ArcSwap`, replaced whole.
//!
//! A request takes one snapshot at its start and uses it to the end, so a reload never mixes
//! two policy versions inside one request, and plans cached for one version are never used
//! for another (each snapshot owns its cache).

use super::cache::CachedPlanner;
use super::load::{load_dir, LoadErrors};
use super::planner::{Planner, PlannerOptions};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Plans kept per snapshot.
const PLAN_CACHE_CAPACITY: u64 = 10_000;

/// One loaded, validated policy set with its planner and plan cache.
pub struct Snapshot {
    /// Increases by one with every successful load; starts at 1.
    pub version: u64,
    pub planner: CachedPlanner,
    /// Warnings the loader reported (ignored `schemas`, …).
    pub warnings: Vec<String>,
}

/// The current snapshot and how to build the next one.
pub struct PolicyStore {
    dir: PathBuf,
    options: PlannerOptions,
    current: ArcSwap<Snapshot>,
    next_version: AtomicU64,
}

impl PolicyStore {
    /// Loads the directory; without a valid policy set there is no store (vecgate does not
    /// serve).
    pub fn open(dir: &Path, options: PlannerOptions) -> Result<PolicyStore, LoadErrors> {
        let first = build(dir, &options, 1)?;
        Ok(PolicyStore {
            dir: dir.to_path_buf(),
            options,
            current: ArcSwap::from_pointee(first),
            next_version: AtomicU64::new(2),
        })
    }

    /// A store of one policy file (`doc.yaml`) with default settings, for unit tests; the
    /// directory lives as long as the returned guard.
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(crate) fn of_one_policy(yaml: &str) -> (tempfile::TempDir, PolicyStore) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("doc.yaml"), yaml).unwrap();
        let store = PolicyStore::open(dir.path(), PlannerOptions::default()).unwrap();
        (dir, store)
    }

    /// The snapshot a request should use from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Loads the directory again; on success swaps the new set in and returns its version,
    /// on failure keeps the current one.
    pub fn reload(&self) -> Result<u64, LoadErrors> {
        let version = self.next_version.fetch_add(1, Ordering::SeqCst);
        let next = build(&self.dir, &self.options, version)?;
        self.current.store(Arc::new(next));
        Ok(version)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn build(dir: &Path, options: &PlannerOptions, version: u64) -> Result<Snapshot, LoadErrors> {
    let set = load_dir(dir)?;
    let warnings = set.warnings.clone();
    let planner = Planner::new(Arc::new(set), options.clone());
    Ok(Snapshot {
        version,
        planner: CachedPlanner::new(planner, version, PLAN_CACHE_CAPACITY),
        warnings,
    })
}
