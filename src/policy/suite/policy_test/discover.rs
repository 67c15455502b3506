//! Finding suite files: `*_test.{yaml,yml,json}` under a directory, recursively, sorted;
//! `testdata` directories hold fixtures and hidden entries are skipped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The directory of shared fixtures, next to the suite files that use it.
pub(super) const TESTDATA: &str = "testdata";

/// Whether `name` is a test suite file name: `*_test.{yaml,yml,json}`, case-insensitively.
pub(super) fn is_test_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| {
        lower
            .strip_suffix(ext)
            .is_some_and(|stem| stem.ends_with("_test"))
    })
}

pub(super) fn has_supported_ext(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Every suite file under `dir`, recursively, sorted. `testdata` directories hold fixtures
/// (not suites) and are not searched; hidden entries are skipped, as the policy loader does.
pub(super) fn discover(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(dir, &mut out, &mut seen)?;
    out.sort();
    Ok(out)
}

pub(super) fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
) -> Result<(), String> {
    if let Ok(real) = dir.canonicalize() {
        if !seen.insert(real) {
            return Ok(());
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            if name != TESTDATA {
                walk(&path, out, seen)?;
            }
        } else if is_test_file(&name) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_file_names() {
        assert!(is_test_file("album_test.yaml"));
        assert!(is_test_file("album_TEST.YML"));
        assert!(is_test_file("a_test.json"));
        assert!(!is_test_file("album.yaml"));
        assert!(!is_test_file("album_test.txt"));
        assert!(!is_test_file("albumtest.yaml"));
    }
}
