//! Resident memory and CPU time of a process, from `/proc`.

/// `VmRSS` (resident now) and `VmHWM` (peak resident), in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Rss {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
    pub fn add(self, other: Rss) -> Rss {
        Rss {
            rss_kib: self.rss_kib + other.rss_kib,
            hwm_kib: self.hwm_kib + other.hwm_kib,
        }
    }
}

pub fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Rss {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// A process and all its descendants, summed (shared pages are counted once per process).
pub fn rss_tree(pid: u32) -> Rss {
    let mut total = rss(pid);
    for child in children(pid) {
        total = total.add(rss_tree(child));
    }
    total
}

/// The direct children of `pid`, found by scanning `/proc/*/stat`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| parent(*candidate) == Some(pid))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    let [ppid] = stat_numbers(pid, [4])?;
    u32::try_from(ppid).ok()
}

/// Numeric fields of `/proc/<pid>/stat`, numbered from 1 as proc(5) does (each ≥ 3).
fn stat_numbers<const N: usize>(pid: u32, fields: [usize; N]) -> Option<[u64; N]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may contain spaces: field 3 follows the last ')'.
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let mut out = [0; N];
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = rest.get(field.checked_sub(3)?)?.parse().ok()?;
    }
    Some(out)
}

/// `/proc/<pid>/comm`.
pub fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// User plus system CPU time of `pid` and all its descendants so far, in seconds (from
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds_tree(pid: u32) -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    // utime and stime are fields 14 and 15.
    let own = stat_numbers(pid, [14, 15]).map_or(0.0, |[user, system]| (user + system) as f64 / TICKS_PER_SECOND);
    own + children(pid).into_iter().map(cpu_seconds_tree).sum::<f64>()
}

/// CPU time of `pid` (every thread) and all its descendants so far, in seconds, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU): fine enough to divide by the
/// requests of a few seconds at a fixed rate, where clock ticks are too coarse.
pub fn cpu_seconds_precise(pid: u32) -> f64 {
    let own: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| {
                    let path = t.ok()?.path().join("schedstat");
                    std::fs::read_to_string(path).ok()?.split_whitespace().next()?.parse::<u64>().ok()
                })
                .sum()
        })
        .unwrap_or(0);
    own as f64 / 1e9 + children(pid).into_iter().map(cpu_seconds_precise).sum::<f64>()
}
