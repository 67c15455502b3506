//! The directory walk: which files under a policy directory are policies, each real file read
//! once (symlinks followed, loops cut), Cerbos test suites and `testdata` skipped.

use super::problem::{io_problem, Problem};
use std::collections::HashSet;
use std::path::{Path, PathBuf};



#[derive(Default)]
pub(super) struct Walker {
    pub(super) files: Vec<(String, String)>,
    pub(super) problems: Vec<Problem>,
    pub(super) seen_dirs: HashSet<PathBuf>,
    pub(super) seen_files: HashSet<PathBuf>,
}

impl Walker {
    pub(super) fn walk(&mut self, dir: &Path, rel: &str) {
        // Symlinked directories may form loops; visit each real directory once.
        if let Ok(real) = dir.canonicalize() {
            if !self.seen_dirs.insert(real) {
                return;
            }
        }
        let shown = if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.problems.push(io_problem(shown, &e.to_string())),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
                Err(e) => self
                    .problems
                    .push(io_problem(shown.clone(), &e.to_string())),
            }
        }
        names.sort();
        for name in names {
            if name.starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.problems.push(io_problem(rel_name, &e.to_string()));
                    continue;
                }
            };
            if meta.is_dir() {
                if name != "testdata" {
                    self.walk(&path, &rel_name);
                }
            } else if meta.is_file() && is_policy_file_name(&name) {
                if let Ok(real) = path.canonicalize() {
                    if !self.seen_files.insert(real) {
                        continue;
                    }
                }
                match std::fs::read_to_string(&path) {
                    Ok(text) => self.files.push((rel_name, text)),
                    Err(e) => self.problems.push(io_problem(rel_name, &e.to_string())),
                }
            }
        }
    }
}

pub(super) fn is_policy_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| {
        lower
            .strip_suffix(ext)
            .is_some_and(|stem| !stem.is_empty() && !stem.ends_with("_test"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_file_names() {
        assert!(is_policy_file_name("a.yaml"));
        assert!(is_policy_file_name("b.JSON"));
        assert!(!is_policy_file_name("a_test.yaml"));
        assert!(!is_policy_file_name("a.txt"));
        assert!(!is_policy_file_name(".yaml"));
    }
}
