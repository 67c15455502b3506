//! Results: a plain-text table on stdout and a Markdown section for bench/README.md, written
//! only between `<!-- load-results:begin -->` and `<!-- load-results:end -->`.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::client::{ClosedResult, OpenResult, Stats};
use crate::memory::Rss;
use crate::proxies::Role;
use crate::workload::Kind;

pub const BEGIN: &str = "<!-- load-results:begin -->";
pub const END: &str = "<!-- load-results:end -->";

/// A path as the tables name it.
pub struct PathInfo {
    pub label: String,
    pub role: Role,
}

/// Which targets a section is judged against.
#[derive(Clone, Copy, PartialEq)]
pub enum Targets {
    None,
    /// The real Chroma mix: maximum throughput ≥ 0.9 × nginx's, memory.
    Mix,
    /// The light request: added latency at 500 rps, maximum throughput ≥ 0.9 × nginx's.
    Light,
    /// A LangChain query against the stub: CPU per request at most `cpu_us`, maximum
    /// throughput ≥ 0.8 × nginx's.
    Stub { cpu_us: f64 },
}

/// One backend's results.
pub struct Section {
    pub title: String,
    pub notes: Vec<String>,
    /// The paths, in the order of every table.
    pub paths: Vec<PathInfo>,
    pub rates: Vec<f64>,
    /// `open[path][rate]`.
    pub open: Vec<Vec<OpenResult>>,
    /// `closed[path]`.
    pub closed: Vec<ClosedResult>,
    pub memory: Vec<MemoryRow>,
    /// Each vecgate build's own time per request, from its metrics: `open_inside[path][rate]`.
    pub open_inside: Vec<Vec<Option<Inside>>>,
    pub closed_inside: Vec<Option<Inside>>,
    pub targets: Targets,
}

impl Section {
    fn index(&self, role: Role) -> Option<usize> {
        self.paths.iter().position(|p| p.role == role)
    }
}

/// Sums over every label set of vecgate's two duration histograms, from `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub request_sum: f64,
    pub request_count: f64,
    pub upstream_sum: f64,
    pub upstream_count: f64,
}

impl Totals {
    pub fn scrape(vecgate: &crate::support::vecgate::VecgateServer) -> Totals {
        let (status, text) = vecgate.admin_get("/metrics");
        if status != 200 {
            return Totals::default();
        }
        let mut t = Totals::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let metric = name.split('{').next().unwrap_or(name);
            match metric {
                "vecgate_request_duration_seconds_sum" => t.request_sum += value,
                "vecgate_request_duration_seconds_count" => t.request_count += value,
                "vecgate_upstream_duration_seconds_sum" => t.upstream_sum += value,
                "vecgate_upstream_duration_seconds_count" => t.upstream_count += value,
                _ => {}
            }
        }
        t
    }
}

/// What vecgate's metrics say about one phase: per client request, the mean time from
/// receiving it to answering it, and the part of that spent waiting for the database.
#[derive(Clone, Copy, Debug)]
pub struct Inside {
    pub total_ms: f64,
    pub upstream_ms: f64,
    pub upstream_calls_per_request: f64,
}

impl Inside {
    pub fn between(before: &Totals, after: &Totals) -> Option<Inside> {
        let requests = after.request_count - before.request_count;
        (requests > 0.0).then(|| Inside {
            total_ms: (after.request_sum - before.request_sum) * 1000.0 / requests,
            upstream_ms: (after.upstream_sum - before.upstream_sum) * 1000.0 / requests,
            upstream_calls_per_request: (after.upstream_count - before.upstream_count) / requests,
        })
    }

    /// Mean time per request that vecgate spent itself (not waiting for the database).
    pub fn own_ms(&self) -> f64 {
        self.total_ms - self.upstream_ms
    }
}

pub struct MemoryRow {
    pub process: String,
    pub idle: Option<Rss>,
    pub after_load: Option<Rss>,
    /// Resident memory with this many connections open, and how many of them failed.
    pub held: Option<(Rss, usize, usize)>,
}

pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub fn saturated(r: &OpenResult) -> bool {
    r.achieved_rps < 0.95 * r.offered_rps || r.stats.unfinished > 0 || r.client_queued
}

fn note(r: &OpenResult) -> String {
    let mut parts = Vec::new();
    if saturated(r) {
        parts.push("**saturated**".to_string());
    }
    if r.client_queued {
        parts.push("client in-flight cap reached".to_string());
    }
    if r.stats.unfinished > 0 {
        parts.push(format!("{} unanswered at the end", r.stats.unfinished));
    }
    parts.join(", ")
}

fn errors(s: &Stats) -> String {
    let total = s.errors();
    if total == 0 {
        "0".to_string()
    } else {
        format!(
            "{total} ({} non-2xx, {} wrong answers, {} transport)",
            s.http_errors, s.bad_answers, s.transport_errors + s.unfinished
        )
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".to_string()
    }
}

fn mib(r: Option<Rss>) -> String {
    match r {
        Some(r) => format!("{:.1} (peak {:.1})", r.rss_mib(), r.hwm_mib()),
        None => "–".to_string(),
    }
}

/// The Markdown for one section.
pub fn markdown(s: &Section) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#### {}\n", s.title);
    for n in &s.notes {
        let _ = writeln!(out, "{n}");
    }
    if !s.notes.is_empty() {
        out.push('\n');
    }

    let _ = writeln!(out, "Open loop, fixed rate (latency from each request's scheduled send time, in ms):\n");
    let _ = writeln!(out, "| offered rps | path | achieved rps | p50 | p90 | p99 | max | errors | note |");
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---|---|");
    for (ri, rate) in s.rates.iter().enumerate() {
        for (pi, path) in s.paths.iter().map(|p| &p.label).enumerate() {
            let r = &s.open[pi][ri];
            let h = &r.stats.latency;
            let _ = writeln!(
                out,
                "| {rate:.0} | {path} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
                r.achieved_rps,
                ms(h, 0.5),
                ms(h, 0.9),
                ms(h, 0.99),
                h.max() as f64 / 1000.0,
                errors(&r.stats),
                note(r)
            );
        }
    }

    let phases: Vec<&OpenResult> = s.open.iter().flatten().collect();
    if !phases.is_empty() {
        let worst = |q: f64| phases.iter().map(|r| ms(&r.stats.send_lag, q)).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\nThe client itself started requests late by up to {:.2} ms at the median and {:.2} ms at p99 \
             (worst phase; it waits for a core like everything else); that delay is part of every latency above.",
            worst(0.5),
            worst(0.99)
        );
    }
    let (Some(di), Some(ni)) = (s.index(Role::Direct), s.index(Role::Nginx)) else {
        return out;
    };
    let _ = writeln!(out, "\nEach vecgate build against the others at each rate:\n");
    let _ = writeln!(
        out,
        "| offered rps | path | added p50 over direct (ms) | added p99 over direct (ms) | p50 /direct | p99 /direct | p50 /nginx | p99 /nginx | own time per request (ms, its metrics) |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for (ri, rate) in s.rates.iter().enumerate() {
        for (vi, path) in s.paths.iter().enumerate().filter(|(_, p)| matches!(p.role, Role::Vecgate | Role::Baseline)) {
            let (d, n, v) = (&s.open[di][ri].stats.latency, &s.open[ni][ri].stats.latency, &s.open[vi][ri].stats.latency);
            let own = match s.open_inside.get(vi).and_then(|p| p.get(ri)).copied().flatten() {
                Some(i) => format!("{:.3} (of {:.2}; {:.2} database calls per request)", i.own_ms(), i.total_ms, i.upstream_calls_per_request),
                None => "–".to_string(),
            };
            let _ = writeln!(
                out,
                "| {rate:.0} | {} | {:+.2} | {:+.2} | {} | {} | {} | {} | {own} |",
                path.label,
                ms(v, 0.5) - ms(d, 0.5),
                ms(v, 0.99) - ms(d, 0.99),
                ratio(ms(v, 0.5), ms(d, 0.5)),
                ratio(ms(v, 0.99), ms(d, 0.99)),
                ratio(ms(v, 0.5), ms(n, 0.5)),
                ratio(ms(v, 0.99), ms(n, 0.99)),
            );
        }
    }

    // Per request kind at the middle rate, when there is more than one kind.
    let several_kinds = s.open.first().and_then(|p| p.first()).is_some_and(|r| r.stats.by_kind.len() > 1);
    if let Some(ri) = (several_kinds && !s.rates.is_empty()).then(|| (s.rates.len() - 1) / 2) {
        let _ = writeln!(out, "\nBy request kind at {:.0} rps, p50 / p99 in ms:\n", s.rates[ri]);
        let header: Vec<&str> = s.paths.iter().map(|p| p.label.as_str()).collect();
        let _ = writeln!(out, "| kind | {} |", header.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len()));
        for kind in [Kind::Query, Kind::GetIds, Kind::GetWhere, Kind::Upsert, Kind::Collection] {
            if s.open.iter().all(|path| !path[ri].stats.by_kind.contains_key(&kind)) {
                continue;
            }
            let mut row = format!("| {} |", kind.label());
            for pi in 0..s.paths.len() {
                match s.open[pi][ri].stats.by_kind.get(&kind) {
                    Some(h) => {
                        let _ = write!(row, " {:.2} / {:.2} |", ms(h, 0.5), ms(h, 0.99));
                    }
                    None => row.push_str(" – |"),
                }
            }
            let _ = writeln!(out, "{row}");
        }
    }

    if !s.closed.is_empty() {
        let c = &s.closed[0];
        let _ = writeln!(
            out,
            "\nMaximum throughput (closed loop: {} connections each sending its next request as soon as \
             the answer arrives; answers counted over {} s):\n",
            c.concurrency,
            c.window.as_secs()
        );
        let _ = writeln!(out, "| path | rps | × nginx | p50 ms | p99 ms | errors | CPU per request | cores busy |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|---:|");
        let nginx = s.index(Role::Nginx).map_or(0.0, |ni| s.closed[ni].throughput);
        for (pi, path) in s.paths.iter().enumerate() {
            let r = &s.closed[pi];
            let (cpu, cores) = match (r.cpu_us_per_request(), r.cpu_seconds) {
                (Some(us), Some(secs)) => (format!("{us:.0} µs"), format!("{:.2}", secs / r.window.as_secs_f64())),
                _ => ("–".to_string(), "–".to_string()),
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {:.2} | {:.2} | {} | {cpu} | {cores} |",
                path.label,
                r.throughput,
                ratio(r.throughput, nginx),
                ms(&r.stats.latency, 0.5),
                ms(&r.stats.latency, 0.99),
                errors(&r.stats)
            );
        }
        let _ = writeln!(
            out,
            "\nCPU per request: user + system CPU time of the process (nginx: master and workers; \
             direct: the database itself, for scale; nothing for the stub, a thread of the \
             harness) over the window, divided by the answers in it."
        );
        for (pi, path) in s.paths.iter().enumerate() {
            if let Some(i) = s.closed_inside.get(pi).copied().flatten() {
                let _ = writeln!(
                    out,
                    "\n{}'s own time per request in the closed loop, from its metrics: {:.3} ms (of {:.2} ms between receiving and answering)",
                    path.label,
                    i.own_ms(),
                    i.total_ms
                );
            }
        }
    }

    if !s.memory.is_empty() {
        let held_n = s.memory.iter().find_map(|m| m.held.map(|h| h.1)).unwrap_or(0);
        let _ = writeln!(out, "\nResident memory, MiB (VmRSS, and VmHWM = peak so far, from /proc):\n");
        let _ = writeln!(
            out,
            "| process | idle after start | after the load phases | {held_n} keep-alive connections open |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for m in &s.memory {
            let held = match m.held {
                Some((r, _, 0)) => mib(Some(r)),
                Some((r, _, failed)) => format!("{} ({failed} connections failed)", mib(Some(r))),
                None => "–".to_string(),
            };
            let _ = writeln!(out, "| {} | {} | {} | {held} |", m.process, mib(m.idle), mib(m.after_load));
        }
    }
    if let Some(t) = targets(s) {
        out.push('\n');
        out.push_str(&t);
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// The issues' targets, as far as this section measures them.
fn targets(s: &Section) -> Option<String> {
    if s.targets == Targets::None {
        return None;
    }
    let (di, ni, vi) = (s.index(Role::Direct)?, s.index(Role::Nginx)?, s.index(Role::Vecgate)?);
    let vg = s.memory.iter().find(|m| m.process == "vecgate");
    let mut out = String::from("Against the targets, on this section's requests:\n\n");
    if let Some(idle) = vg.and_then(|m| m.idle) {
        let _ = writeln!(out, "- RSS idle ≤ 20 MiB: {:.1} MiB, {}", idle.rss_mib(), verdict(idle.rss_mib() <= 20.0));
    }
    if let Some((held, n, failed)) = vg.and_then(|m| m.held) {
        let _ = writeln!(
            out,
            "- RSS with 1,000 connections ≤ 64 MiB: {:.1} MiB with {} connections ({failed} failed), {}",
            held.rss_mib(),
            n,
            verdict(held.rss_mib() <= 64.0 && n >= 1000 && failed == 0)
        );
    }
    let wanted = match s.targets {
        Targets::Stub { .. } => 0.8,
        _ => 0.9,
    };
    if s.closed[ni].throughput > 0.0 {
        let r = s.closed[vi].throughput / s.closed[ni].throughput;
        let _ = writeln!(out, "- maximum throughput ≥ {wanted} × nginx's: {r:.2} × nginx's, {}", verdict(r >= wanted));
    }
    if let Targets::Stub { cpu_us } = s.targets {
        if let Some(us) = s.closed[vi].cpu_us_per_request() {
            let _ = writeln!(out, "- CPU per proxied request ≤ {cpu_us:.0} µs: {us:.0} µs, {}", verdict(us <= cpu_us));
        }
    }
    let at_500 = s.rates.iter().position(|r| (*r - 500.0).abs() < 0.5);
    match at_500 {
        Some(ri) if !saturated(&s.open[di][ri]) => {
            let (d, v) = (&s.open[di][ri].stats.latency, &s.open[vi][ri].stats.latency);
            let (p50, p99) = (ms(v, 0.5) - ms(d, 0.5), ms(v, 0.99) - ms(d, 0.99));
            let _ = writeln!(
                out,
                "- added p50 ≤ 0.25 ms and p99 ≤ 1 ms over direct at 500 rps: {p50:+.2} ms and {p99:+.2} ms, {}",
                verdict(p50 <= 0.25 && p99 <= 1.0)
            );
        }
        _ => {
            // The highest rate the direct path sustained.
            let best = (0..s.rates.len()).rev().find(|&ri| !saturated(&s.open[di][ri]));
            let direct_max = s.closed[di].throughput;
            let mut line = format!(
                "- added p50 ≤ 0.25 ms and p99 ≤ 1 ms over direct at 500 rps: not measurable with \
                 these requests, the database itself serves at most {direct_max:.0} requests/s."
            );
            if let Some(ri) = best {
                let (d, v) = (&s.open[di][ri].stats.latency, &s.open[vi][ri].stats.latency);
                let _ = write!(
                    line,
                    " At {:.0} rps the added p50 was {:+.2} ms and p99 {:+.2} ms",
                    s.rates[ri],
                    ms(v, 0.5) - ms(d, 0.5),
                    ms(v, 0.99) - ms(d, 0.99)
                );
                if let Some(i) = s.open_inside.get(vi).and_then(|p| p.get(ri)).copied().flatten() {
                    let _ = write!(line, "; vecgate's own time per request was {:.3} ms", i.own_ms());
                }
                line.push('.');
            }
            let _ = writeln!(out, "{line}");
        }
    }
    Some(out)
}

/// Every section's maximum throughput and CPU per request, path by path, in one table: the
/// proxies side by side, and each vecgate build against the others.
pub fn summary(sections: &[Section]) -> String {
    let mut out = String::from(
        "Side by side (closed loop; CPU per request of the proxy process; × nginx: maximum \
         throughput against nginx's in the same section):\n\n| section | path | max rps | × nginx | CPU per request |\n|---|---|---:|---:|---:|\n",
    );
    for s in sections {
        let nginx = s.index(Role::Nginx).map_or(0.0, |ni| s.closed[ni].throughput);
        for (pi, path) in s.paths.iter().enumerate().filter(|(_, p)| p.role != Role::Direct) {
            let r = &s.closed[pi];
            let cpu = r.cpu_us_per_request().map_or_else(|| "–".to_string(), |us| format!("{us:.0} µs"));
            let _ = writeln!(out, "| {} | {} | {:.0} | {} | {cpu} |", short_title(&s.title), path.label, r.throughput, ratio(r.throughput, nginx));
        }
    }
    out
}

fn short_title(title: &str) -> String {
    let t = title.split(" (").next().unwrap_or(title);
    t.split(':').next().unwrap_or(t).trim_matches('*').to_string()
}

/// A compact table for the terminal, printed as each phase ends.
pub fn print_open(path: &str, r: &OpenResult) {
    let h = &r.stats.latency;
    println!(
        "  {path:<8} offered {:>5.0} rps  achieved {:>7.1}  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  max {:>8.1}  errors {}  {}",
        r.offered_rps,
        r.achieved_rps,
        ms(h, 0.5),
        ms(h, 0.9),
        ms(h, 0.99),
        h.max() as f64 / 1000.0,
        errors(&r.stats),
        note(r).replace("**", "")
    );
    println!(
        "           client: task started {:.3} ms (p50) / {:.3} ms (p99) after the scheduled time",
        ms(&r.stats.send_lag, 0.5),
        ms(&r.stats.send_lag, 0.99)
    );
    if let Some(e) = &r.stats.first_error {
        println!("           first error: {e}");
    }
}

pub fn print_closed(path: &str, r: &ClosedResult) {
    let cpu = r.cpu_us_per_request().map(|us| format!("  CPU {us:.0} µs/request")).unwrap_or_default();
    println!(
        "  {path:<8} closed loop, {} connections: {:>7.1} rps  p50 {:.2} ms  p99 {:.2} ms  errors {}{cpu}",
        r.concurrency,
        r.throughput,
        ms(&r.stats.latency, 0.5),
        ms(&r.stats.latency, 0.99),
        errors(&r.stats)
    );
    if let Some(e) = &r.stats.first_error {
        println!("           first error: {e}");
    }
}

/// Replaces what lies between the markers in `readme` with `body`. Fails, changing nothing,
/// if the markers are missing or out of order.
pub fn write_between_markers(readme: &Path, body: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(readme).map_err(|e| format!("read {}: {e}", readme.display()))?;
    let begin = text
        .find(BEGIN)
        .ok_or_else(|| format!("{} has no {BEGIN} line", readme.display()))?;
    let end = text
        .find(END)
        .filter(|e| *e > begin)
        .ok_or_else(|| format!("{} has no {END} after {BEGIN}", readme.display()))?;
    let mut out = String::with_capacity(text.len() + body.len());
    out.push_str(&text[..begin + BEGIN.len()]);
    out.push('\n');
    out.push_str(body.trim_end());
    out.push('\n');
    out.push_str(&text[end..]);
    std::fs::write(readme, out).map_err(|e| format!("write {}: {e}", readme.display()))
}
