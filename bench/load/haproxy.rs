//! HAProxy in front of the database, verifying the same HS256 JWT vecgate verifies (its
//! signature, `alg`, `exp`, `iss` and `aud`, with `http-request … jwt_verify`) before it
//! proxies: the cheapest real proxy that does vecgate's first step. The binary is Debian's
//! (`scripts/haproxy.sh`), run in the foreground with its configuration in a temporary
//! directory; two threads, as many as vecgate's tokio workers and nginx's worker processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct HaproxyServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

/// What a token must satisfy.
pub struct Jwt<'a> {
    pub secret: &'a str,
    pub issuer: &'a str,
    pub audience: &'a str,
}

fn config(port: u16, upstream: &str, jwt: &Jwt<'_>) -> String {
    let (secret, issuer, audience) = (jwt.secret, jwt.issuer, jwt.audience);
    format!(
        "global
    maxconn 8192
    nbthread 2
    tune.bufsize 65536
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 60s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
frontend vecgate_load
    bind 127.0.0.1:{port}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless {{ var(txn.alg) -m str HS256 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,\"{secret}\") -m int 1 }}
    http-request set-var(txn.now) date()
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request deny deny_status 401 unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str {audience} }}
    default_backend database
backend database
    server db {upstream}
"
    )
}

impl HaproxyServer {
    /// Starts HAProxy on a free port in front of `upstream` (`127.0.0.1:PORT`) and waits until
    /// it accepts connections.
    pub fn start(binary: &Path, upstream: &str, jwt: &Jwt<'_>) -> HaproxyServer {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("vecgate-load-haproxy-").tempdir().expect("temp dir for haproxy");
            let port = crate::support::free_port();
            let conf = dir.path().join("haproxy.cfg");
            std::fs::write(&conf, config(port, upstream, jwt)).expect("write haproxy.cfg");
            let log = std::fs::File::create(dir.path().join("stderr.log")).expect("haproxy stderr log");
            let child = Command::new(binary)
                .arg("-db")
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = HaproxyServer { child, port, dir };
            match server.wait_listening() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("haproxy did not start:\n{last}");
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("haproxy exited with {status}:\n{}", self.logs()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            sleep(Duration::from_millis(25));
        }
        Err(format!("haproxy did not listen within 10s:\n{}", self.logs()))
    }

    pub fn logs(&self) -> String {
        crate::support::log_tail(&self.dir.path().join("stderr.log"), 20)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `haproxy -v`'s first line.
    pub fn version(binary: &Path) -> String {
        Command::new(binary)
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
            .unwrap_or_else(|| "HAProxy".to_string())
    }
}

impl Drop for HaproxyServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
