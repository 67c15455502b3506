//! The ways a request reaches the database, started together in front of one upstream:
//! directly, through nginx (a plain reverse proxy), through HAProxy (verifying the JWT),
//! through vecgate as built now, and through any older vecgate builds given for comparison
//! (`VECGATE_BASELINE_BIN`). Each path is one [`Target`]: its label, its role in the tables,
//! its address, the workload it gets and the process whose CPU time is counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::client::Workload;
use crate::haproxy::{HaproxyServer, Jwt};
use crate::nginx::NginxServer;
use crate::support::vecgate::{VecgateOptions, VecgateServer, AUDIENCE, ISSUER, TEST_SECRET};

/// What a path is, for the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Direct,
    Nginx,
    Haproxy,
    /// vecgate as built now.
    Vecgate,
    /// An older vecgate build, run beside the current one.
    Baseline,
}

/// One path to the database, as a phase uses it.
pub struct Target<'a> {
    pub label: String,
    pub role: Role,
    pub addr: SocketAddr,
    pub work: Arc<Workload>,
    /// The process whose CPU time (with its children) is counted; `None` for the stub, a
    /// thread of the harness.
    pub cpu_pid: Option<u32>,
    /// For vecgate builds: the server, whose `/metrics` are read.
    pub vecgate: Option<&'a VecgateServer>,
}

/// An older vecgate build to compare against.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub label: String,
    pub binary: PathBuf,
}

/// `VECGATE_BASELINE_BIN`: `PATH` or `LABEL=PATH`, several separated by commas.
pub fn baselines_from_env() -> Vec<Baseline> {
    let Some(value) = std::env::var_os("VECGATE_BASELINE_BIN").filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    value
        .to_string_lossy()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let (label, path) = match entry.split_once('=') {
                Some((label, path)) => (label.trim().to_string(), PathBuf::from(path.trim())),
                None => {
                    let path = PathBuf::from(entry.trim());
                    let name = path.file_name().map_or_else(|| entry.to_string(), |n| n.to_string_lossy().into_owned());
                    (name, path)
                }
            };
            assert!(path.is_file(), "VECGATE_BASELINE_BIN: {} is not a file", path.display());
            Baseline { label: format!("vecgate {label}"), binary: path }
        })
        .collect()
}

/// The proxies in front of one upstream.
pub struct Proxies {
    pub nginx: NginxServer,
    pub haproxy: Option<HaproxyServer>,
    pub vecgate: VecgateServer,
    pub baselines: Vec<(String, VecgateServer)>,
}

impl Proxies {
    /// Starts nginx, HAProxy (when a binary is given), vecgate with `options`, and each
    /// baseline with the same options, in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(nginx: &std::path::Path, haproxy: Option<&std::path::Path>, upstream: &str, options: &VecgateOptions, baselines: &[Baseline]) -> Proxies {
        let vecgate = VecgateServer::start(options);
        let baselines = baselines
            .iter()
            .map(|b| {
                let options = VecgateOptions { binary: Some(b.binary.clone()), ..options.clone() };
                (b.label.clone(), VecgateServer::start(&options))
            })
            .collect();
        let jwt = Jwt { secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE };
        Proxies {
            nginx: NginxServer::start(nginx, upstream),
            haproxy: haproxy.map(|binary| HaproxyServer::start(binary, upstream, &jwt)),
            vecgate,
            baselines,
        }
    }

    /// Every path: direct (`direct`, with its process if known), nginx, HAProxy, vecgate,
    /// the baselines. `filtered` goes to the paths that do not filter themselves, `bare` to
    /// the vecgate builds.
    pub fn targets(&self, direct: SocketAddr, direct_pid: Option<u32>, filtered: &Arc<Workload>, bare: &Arc<Workload>) -> Vec<Target<'_>> {
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let mut targets = vec![
            Target { label: "direct".into(), role: Role::Direct, addr: direct, work: filtered.clone(), cpu_pid: direct_pid, vecgate: None },
            Target { label: "nginx".into(), role: Role::Nginx, addr: local(self.nginx.port()), work: filtered.clone(), cpu_pid: Some(self.nginx.master_pid()), vecgate: None },
        ];
        if let Some(h) = &self.haproxy {
            targets.push(Target { label: "haproxy".into(), role: Role::Haproxy, addr: local(h.port()), work: filtered.clone(), cpu_pid: Some(h.pid()), vecgate: None });
        }
        targets.push(Target { label: "vecgate".into(), role: Role::Vecgate, addr: local(self.vecgate.port()), work: bare.clone(), cpu_pid: Some(self.vecgate.pid()), vecgate: Some(&self.vecgate) });
        for (label, server) in &self.baselines {
            targets.push(Target { label: label.clone(), role: Role::Baseline, addr: local(server.port()), work: bare.clone(), cpu_pid: Some(server.pid()), vecgate: Some(server) });
        }
        targets
    }
}
