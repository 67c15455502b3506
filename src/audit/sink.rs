//! Where the audit lines go, and what keeps two threads' lines from mixing.
//!
//! Workers write their lines concurrently (one runtime per core), so a sink must keep each
//! line whole without making every request wait for every other one's `write`. One
//! `write(2)` per line (or per buffered batch of whole lines) is whole where the kernel makes
//! it so, and only there is the lock left out:
//! - a regular file: the kernel serialises writes to one open file (the inode lock; with
//!   `O_APPEND`, as a file sink is opened, each write lands at the end in one piece);
//! - a pipe or FIFO (a container's stdout): a write of at most `PIPE_BUF` bytes is never
//!   interleaved with another. Longer writes take the lock exclusively, the short ones share
//!   it, so a long line is never split by one of ours;
//! - anything else (a terminal, a socket such as journald's stream): every write under one
//!   exclusive lock, as a plain logger would.

use crate::config::AuditConfig;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::FileTypeExt as _;
use std::sync::RwLock;

/// An open audit destination.
pub(super) struct Sink {
    out: File,
    whole: Whole,
    lock: RwLock<()>,
}

/// Up to which length one `write(2)` on the sink is whole without our lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Whole {
    Always,
    UpTo(usize),
    Never,
}

/// POSIX's minimum `PIPE_BUF`, and Linux's value.
pub(super) const PIPE_BUF: usize = 4096;

impl Sink {
    /// The configured destination; `None` for `audit.path: off`.
    pub(super) fn open(config: &AuditConfig) -> std::io::Result<Option<Sink>> {
        let out = match config {
            AuditConfig::Off => return Ok(None),
            // Our own handle on standard output: std's `Stdout` would put its lock (and its
            // line buffer) in front of every write.
            AuditConfig::Stdout => File::from(std::io::stdout().as_fd().try_clone_to_owned()?),
            AuditConfig::File(path) => OpenOptions::new().create(true).append(true).open(path)?,
        };
        let whole = match out.metadata().map(|m| m.file_type()) {
            Ok(t) if t.is_file() => Whole::Always,
            Ok(t) if t.is_fifo() => Whole::UpTo(PIPE_BUF),
            _ => Whole::Never,
        };
        Ok(Some(Sink { out, whole, lock: RwLock::new(()) }))
    }

    #[cfg(test)]
    pub(super) fn whole(&self) -> Whole {
        self.whole
    }

    /// Writes `lines` (whole lines) in one piece. A lock poisoned by a panicking writer still
    /// orders the writes, so it is used as it is.
    pub(super) fn write(&self, lines: &[u8]) -> std::io::Result<()> {
        let mut out = &self.out;
        match self.whole {
            Whole::Always => out.write_all(lines),
            Whole::UpTo(n) if lines.len() <= n => {
                let _shared = self.lock.read().unwrap_or_else(|e| e.into_inner());
                out.write_all(lines)
            }
            Whole::UpTo(_) | Whole::Never => {
                let _alone = self.lock.write().unwrap_or_else(|e| e.into_inner());
                out.write_all(lines)
            }
        }
    }
}
