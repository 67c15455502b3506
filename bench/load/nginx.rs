//! nginx as a plain reverse proxy in front of the database: the binary that
//! `scripts/nginx.sh` unpacked from Debian's package (or an installed one), run in the
//! foreground with its prefix, configuration, pid file and logs in a temporary directory.
//!
//! `worker_processes auto` (one worker per core, here 2): nginx's own recommendation, and the
//! same parallelism vecgate gets from its tokio runtime (one worker thread per core).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct NginxServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

fn config(port: u16, upstream: &str, dir: &Path, root: bool) -> String {
    let d = dir.display();
    // As root, nginx would switch its workers to `nobody`, who cannot enter the temp dir.
    let user = if root { "user root;\n" } else { "" };
    format!(
        "{user}worker_processes auto;
worker_rlimit_nofile 8192;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream database {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://database;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_buffer_size 16k;
            proxy_buffers 16 16k;
            proxy_read_timeout 60s;
        }}
    }}
}}
"
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

impl NginxServer {
    /// Starts nginx on a free port in front of `upstream` (`127.0.0.1:PORT`) and waits until
    /// it accepts connections.
    pub fn start(binary: &Path, upstream: &str) -> NginxServer {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("vecgate-load-nginx-")
                .tempdir()
                .expect("temp dir for nginx");
            let port = crate::support::free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(port, upstream, dir.path(), is_root())).expect("write nginx.conf");
            let log = std::fs::File::create(dir.path().join("stderr.log")).expect("nginx stderr log");
            let child = Command::new(binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = NginxServer { child, port, dir };
            match server.wait_listening() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("nginx did not start:\n{last}");
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited with {status}:\n{}", self.logs()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && !self.workers().is_empty() {
                return Ok(());
            }
            sleep(Duration::from_millis(25));
        }
        Err(format!("nginx did not listen within 10s:\n{}", self.logs()))
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "error.log"] {
            out.push_str(&crate::support::log_tail(&self.dir.path().join(name), 20));
            out.push('\n');
        }
        out
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker processes (children of the master).
    pub fn workers(&self) -> Vec<u32> {
        crate::memory::children(self.child.id())
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        // SIGTERM to the master stops the workers too; SIGKILL would orphan them.
        let workers = self.workers();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in workers {
            if crate::memory::command_name(pid).as_deref() == Some("nginx") {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
            }
        }
    }
}
