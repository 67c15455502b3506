//! Hot reload of policies with real files: edits, broken sets, a Kubernetes ConfigMap
//! `..data` swap, symlinked directories, and SIGHUP. Waits poll with generous deadlines;
//! nothing here asserts how long anything took.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vecgate::plan::Plan;
use vecgate::policy::planner::{PlanRequest, PlannerOptions, Principal};
use vecgate::policy::store::PolicyStore;
use vecgate::policy::watch::{
    reload_now, spawn_policy_watcher, spawn_policy_watcher_with, OnReload, WatchError, WatchOptions,
};

const DEADLINE: Duration = Duration::from_secs(30);

/// Users may read documents of one department.
fn policy(department: &str) -> String {
    format!(
        r#"apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.department == "{department}"
"#
    )
}

const BROKEN_YAML: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy: [unclosed\n";

/// Writes through a hidden temporary file and a rename, so a reload never sees half a file.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_file_name(format!(".tmp-{}", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read_plan(store: &PolicyStore) -> Plan {
    let principal = Principal { id: "alice".into(), roles: vec!["user".into()], ..Principal::default() };
    let none = BTreeMap::new();
    let actions = ["read".to_string()];
    let snapshot = store.snapshot();
    snapshot
        .planner
        .planner()
        .plan(&PlanRequest {
            principal: &principal,
            resource_kind: "document",
            resource_scope: "",
            resource_version: "default",
            resource_attr: &none,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: &none,
            now: chrono::Utc::now().fixed_offset(),
        })
        .plan
}

/// The plan a store with only `policy(department)` answers.
fn expected_plan(department: &str) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), policy(department)).unwrap();
    read_plan(&PolicyStore::open(dir.path(), PlannerOptions::default()).unwrap())
}

/// Records every callback.
#[derive(Clone, Default)]
struct Outcomes(Arc<Mutex<Vec<Result<u64, String>>>>);

impl Outcomes {
    fn callback(&self) -> OnReload {
        let outcomes = self.0.clone();
        Arc::new(move |outcome| outcomes.lock().unwrap().push(outcome))
    }
    fn all(&self) -> Vec<Result<u64, String>> {
        self.0.lock().unwrap().clone()
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files_only() -> WatchOptions {
    WatchOptions { sighup: false, ..WatchOptions::default() }
}

fn open(dir: &Path) -> Arc<PolicyStore> {
    Arc::new(PolicyStore::open(dir, PlannerOptions::default()).unwrap())
}

#[test]
fn a_valid_change_is_loaded_as_a_new_version_with_a_new_plan() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.yaml");
    std::fs::write(&file, policy("sales")).unwrap();
    let store = open(dir.path());
    assert_eq!(store.snapshot().version, 1);
    let sales = expected_plan("sales");
    let finance = expected_plan("finance");
    assert_ne!(sales, finance, "the two policies must plan differently for this test to mean anything");
    assert_eq!(read_plan(&store), sales);

    let outcomes = Outcomes::default();
    let _watch = spawn_policy_watcher_with(store.clone(), outcomes.callback(), files_only()).unwrap();
    write_atomically(&file, &policy("finance"));

    wait_until("the finance policy to be in use", || read_plan(&store) == finance);
    let version = store.snapshot().version;
    assert!(version > 1);
    wait_until("the callback to report the new version", || outcomes.all().contains(&Ok(version)));
    assert!(outcomes.all().iter().all(Result::is_ok), "{:?}", outcomes.all());
}

#[test]
fn a_broken_change_keeps_the_last_good_set_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.yaml");
    std::fs::write(&file, policy("sales")).unwrap();
    let store = open(dir.path());
    let sales = expected_plan("sales");

    let outcomes = Outcomes::default();
    let _watch = spawn_policy_watcher_with(store.clone(), outcomes.callback(), files_only()).unwrap();
    write_atomically(&file, BROKEN_YAML);

    wait_until("the callback to report the refused set", || outcomes.all().iter().any(Result::is_err));
    assert_eq!(store.snapshot().version, 1, "a refused set must not replace the snapshot");
    assert_eq!(read_plan(&store), sales);
    assert!(outcomes.all().iter().all(Result::is_err), "{:?}", outcomes.all());

    write_atomically(&file, &policy("finance"));
    let finance = expected_plan("finance");
    wait_until("the fixed policy to be in use", || read_plan(&store) == finance);
    let version = store.snapshot().version;
    assert!(version > 1);
    wait_until("the callback to report the fixed set", || outcomes.all().contains(&Ok(version)));
}

/// The layout kubelet gives a ConfigMap volume, and its update: a new timestamped directory,
/// a new `..data` symlink renamed over the old one, the old directory removed.
#[cfg(unix)]
#[test]
fn a_configmap_data_symlink_swap_reloads_the_new_content() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v1 = root.join("..2025_01_01_00_00_00.1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("document.yaml"), policy("sales")).unwrap();
    symlink("..2025_01_01_00_00_00.1", root.join("..data")).unwrap();
    symlink("..data/document.yaml", root.join("document.yaml")).unwrap();

    let store = open(root);
    let sales = expected_plan("sales");
    let finance = expected_plan("finance");
    assert_eq!(read_plan(&store), sales);
    let outcomes = Outcomes::default();
    let _watch = spawn_policy_watcher_with(store.clone(), outcomes.callback(), files_only()).unwrap();

    let v2 = root.join("..2025_01_02_00_00_00.2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("document.yaml"), policy("finance")).unwrap();
    symlink("..2025_01_02_00_00_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    wait_until("the new ConfigMap content to be in use", || read_plan(&store) == finance);
    let version = store.snapshot().version;
    wait_until("the callback to report the new version", || outcomes.all().contains(&Ok(version)));
    // Every state of the swap is a complete policy set: no reload may have failed.
    assert!(outcomes.all().iter().all(Result::is_ok), "{:?}", outcomes.all());
    assert_eq!(read_plan(&store), finance);
}

/// A subdirectory that is a symlink to a directory outside the tree is watched by its target.
#[cfg(unix)]
#[test]
fn changes_behind_a_symlinked_directory_are_seen() {
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("document.yaml"), policy("sales")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("shared")).unwrap();

    let store = open(dir.path());
    assert_eq!(read_plan(&store), expected_plan("sales"));
    let outcomes = Outcomes::default();
    let _watch = spawn_policy_watcher_with(store.clone(), outcomes.callback(), files_only()).unwrap();

    write_atomically(&elsewhere.path().join("document.yaml"), &policy("finance"));
    let finance = expected_plan("finance");
    wait_until("the change behind the symlink to be in use", || read_plan(&store) == finance);
}

#[test]
fn reload_now_reports_both_outcomes_to_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.yaml");
    std::fs::write(&file, policy("sales")).unwrap();
    let store = open(dir.path());
    let outcomes = Outcomes::default();
    let callback = outcomes.callback();

    assert_eq!(reload_now(&store, &*callback), Ok(2));
    std::fs::write(&file, BROKEN_YAML).unwrap();
    let refused = reload_now(&store, &*callback);
    assert!(refused.is_err());
    assert_eq!(store.snapshot().version, 2);
    assert_eq!(outcomes.all(), vec![Ok(2), refused]);
}

#[test]
fn a_reload_request_reloads_without_any_file_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("document.yaml"), policy("sales")).unwrap();
    let store = open(dir.path());
    let outcomes = Outcomes::default();
    let watch = spawn_policy_watcher_with(store.clone(), outcomes.callback(), files_only()).unwrap();

    watch.request_reload();
    wait_until("the requested reload", || store.snapshot().version == 2);
    wait_until("the callback", || outcomes.all() == vec![Ok(2)]);
}

#[test]
fn watching_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("document.yaml"), policy("sales")).unwrap();
    let store = open(dir.path());
    drop(dir);
    let result = spawn_policy_watcher_with(store, Outcomes::default().callback(), files_only());
    assert!(matches!(result, Err(WatchError::Watch { .. })));
}

#[test]
fn sighup_without_a_tokio_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("document.yaml"), policy("sales")).unwrap();
    let store = open(dir.path());
    let result = spawn_policy_watcher(store, Outcomes::default().callback());
    assert!(matches!(result, Err(WatchError::NoRuntime(_))));
}

/// The only test that enables SIGHUP (the others would reload on it too). The handler is
/// installed when `spawn_policy_watcher` returns, so the signal cannot kill the test process.
#[cfg(unix)]
#[test]
fn sighup_reloads_the_policies() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _entered = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("document.yaml"), policy("sales")).unwrap();
    let store = open(dir.path());
    let outcomes = Outcomes::default();
    let _watch = spawn_policy_watcher(store.clone(), outcomes.callback()).unwrap();

    // No file changes: only the signal can cause a reload.
    let status =
        std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_until("the SIGHUP reload", || store.snapshot().version == 2);
    wait_until("the callback", || outcomes.all() == vec![Ok(2)]);
}
