"""Helpers behind conftest.py: start the real Chroma server, the Qdrant test server
(tests/qdrant_server) and vecgate on free loopback ports, render vecgate's configuration, mint
tokens, and connect the real chromadb and qdrant-client clients.

Everything here talks to processes on 127.0.0.1 only and cleans up after itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import chromadb
import requests
from chromadb.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO_ROOT / "examples" / "langchain-chroma"
CONFIG_TEMPLATE = EXAMPLE_DIR / "vecgate.yaml.template"
POLICIES_DIR = EXAMPLE_DIR / "policies"
QDRANT_EXAMPLE_DIR = REPO_ROOT / "examples" / "langchain-qdrant"
QDRANT_CONFIG_TEMPLATE = QDRANT_EXAMPLE_DIR / "vecgate.yaml.template"
QDRANT_POLICIES_DIR = QDRANT_EXAMPLE_DIR / "policies"
QDRANT_SERVER = REPO_ROOT / "tests" / "qdrant_server" / "server.py"
# The variable the Qdrant config template names in `upstream.api_key_env`.
QDRANT_API_KEY_ENV = "VECGATE_QDRANT_API_KEY"

# The demo's embedding and corpus are shared with the tests, so the tests check what the demo
# shows.
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))
# The Qdrant example's own module (point_ids) comes after, so corpus/embeddings/mint_token
# stay the Chroma example's (the Qdrant example reuses them too).
if str(QDRANT_EXAMPLE_DIR) not in sys.path:
    sys.path.append(str(QDRANT_EXAMPLE_DIR))

# Tokens are minted by the demo's own helper (issuer/audience match the config template).
from mint_token import SECRET_ENV, mint as mint_token  # noqa: E402

STARTUP_TIMEOUT_S = 60.0
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A child process with its combined stdout/stderr in a log file."""

    name: str
    proc: Optional[subprocess.Popen]
    log_path: Path
    port: int
    extra: dict = field(default_factory=dict)
    # A server this process did not start (QDRANT_URL): its address, and no process.
    external_url: Optional[str] = None

    @property
    def url(self) -> str:
        return self.external_url or f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"({self.name}: no log at {self.log_path})"
        text = _ANSI_ESCAPE.sub("", text)
        return "\n".join(line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()  # the Qdrant test server exits when its stdin closes
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _die_with_parent() -> None:
    """In the child before exec: on Linux, ask for SIGTERM when the test process dies, so a
    killed pytest leaves no servers behind. Elsewhere the fixtures' own cleanup has to do."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawn(
    name: str, argv: list[str], log_path: Path, port: int, env=None, stdin=subprocess.DEVNULL,
    cwd=None,
) -> Server:
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    finally:
        log.close()
    return Server(name=name, proc=proc, log_path=log_path, port=port)


def wait_until_answers(server: Server, path: str, ok_statuses: Optional[set[int]] = None) -> None:
    """Polls GET `path` until the server answers (with one of `ok_statuses` when given);
    raises with the server's log tail if it exits or does not answer in time."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.proc.returncode} while starting;"
                f" log tail:\n{server.tail()}"
            )
        try:
            resp = requests.get(server.url + path, timeout=2)
            if ok_statuses is None or resp.status_code in ok_statuses:
                return
            last_error = f"status {resp.status_code}"
        except requests.RequestException as exc:
            last_error = str(exc)
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(
        f"{server.name} did not answer {path} within {STARTUP_TIMEOUT_S}s ({last_error});"
        f" log tail:\n{server.tail()}"
    )


def start_chroma(workdir: Path) -> Server:
    """The real Chroma server (the Rust server inside the chromadb wheel) on a free port with
    a fresh data directory under `workdir`."""
    data_dir = workdir / "chroma-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    code = (
        "import sys, chromadb_rust_bindings as c;"
        " c.cli(['chroma', 'run', '--path', sys.argv[1], '--host', '127.0.0.1',"
        " '--port', sys.argv[2]])"
    )
    server = _spawn(
        "chroma",
        [sys.executable, "-c", code, str(data_dir), str(port)],
        workdir / "chroma.log",
        port,
    )
    wait_until_answers(server, "/api/v2/heartbeat", {200})
    return server


def find_vecgate_binary() -> Path:
    """$VECGATE_BIN if set; otherwise `cargo build` in the repository and the debug binary
    (under $CARGO_TARGET_DIR when set, else ./target)."""
    explicit = os.environ.get("VECGATE_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise RuntimeError(f"VECGATE_BIN={explicit} is not a file")
        return path
    result = subprocess.run(
        ["cargo", "build", "--bin", "vecgate"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cargo build failed:\n{result.stdout[-4000:]}")
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    binary = target_dir / "debug" / "vecgate"
    if not binary.is_file():
        raise RuntimeError(f"cargo build succeeded but {binary} does not exist")
    return binary


def render_config(
    listen_port: int,
    upstream_url: str,
    policies_dir: Path,
    audit_path: Path,
    template: Path = CONFIG_TEMPLATE,
) -> str:
    """A demo's config template (the Chroma one by default) with its placeholders filled in."""
    text = template.read_text()
    for key, value in {
        "@LISTEN@": f"127.0.0.1:{listen_port}",
        "@UPSTREAM_URL@": upstream_url,
        "@POLICIES_DIR@": str(policies_dir),
        "@AUDIT_PATH@": str(audit_path),
    }.items():
        text = text.replace(key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"config template placeholders not filled: {left}")
    return text


CERBOS_VERSION = "0.55.0"


def find_cerbos_binary() -> Path:
    """The pinned Cerbos PDP binary: $VECGATE_CERBOS, else the cache of scripts/cerbos.sh. A
    missing binary is an error that says how to install it."""
    explicit = os.environ.get("VECGATE_CERBOS")
    path = (
        Path(explicit)
        if explicit
        else REPO_ROOT / ".tmp" / "cerbos" / CERBOS_VERSION / "package" / "cerbos-linux-x64"
    )
    if not path.is_file():
        raise RuntimeError(
            f"the Cerbos PDP binary {path} does not exist; run ./scripts/cerbos.sh (or "
            "./scripts/test.sh, which runs it and sets VECGATE_CERBOS)"
        )
    return path


def start_cerbos(workdir: Path, policies_dir: Path) -> Server:
    """The real Cerbos PDP (`cerbos server`) on free loopback ports, serving the policy files
    of `policies_dir` from a disk store (read only), Cerbos' default engine settings."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    config = {
        "server": {
            "httpListenAddr": f"127.0.0.1:{http_port}",
            "grpcListenAddr": f"127.0.0.1:{grpc_port}",
        },
        "storage": {
            "driver": "disk",
            "disk": {"directory": str(policies_dir), "watchForChanges": False},
        },
        "audit": {"enabled": False},
        "telemetry": {"disabled": True},
    }
    config_path = workdir / "cerbos.yaml"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ)
    env["CERBOS_NO_TELEMETRY"] = "1"
    server = _spawn(
        "cerbos",
        [str(find_cerbos_binary()), "server", f"--config={config_path}", "--log-level=warn"],
        workdir / "cerbos.log",
        http_port,
        env=env,
    )
    wait_until_answers(server, "/_cerbos/health", {200})
    return server


def start_vecgate(
    binary: Path,
    workdir: Path,
    upstream_url: str,
    secret: str,
    template: Path = CONFIG_TEMPLATE,
    policies_dir: Path = POLICIES_DIR,
    extra_env: Optional[dict[str, str]] = None,
    health_path: str = "/api/v2/heartbeat",
    grpc_upstream_url: Optional[str] = None,
    pdp_url: Optional[str] = None,
) -> Server:
    """vecgate in front of `upstream_url`, with a demo's config template and policies (the
    Chroma demo's by default), on a free port. `extra_env` is added to its environment. With
    `grpc_upstream_url` (the database's gRPC port), vecgate also listens for gRPC
    (`extra["grpc_port"]`) and serves its admin port (`extra["admin_port"]`: /metrics). With
    `pdp_url`, its policies come from that Cerbos PDP instead of `policies_dir`."""
    port = free_port()
    config_path = workdir / "vecgate.yaml"
    audit_path = workdir / "audit.jsonl"
    config = render_config(port, upstream_url, policies_dir, audit_path, template)
    if pdp_url is not None:
        block = f"policies:\n  dir: {policies_dir}\n  watch: false\n"
        if block not in config:
            raise RuntimeError(f"the config template's policies section is not {block!r}")
        config = config.replace(
            block, f"policies:\n  pdp: {{url: {pdp_url}, timeout: 5s, plan_cache_ttl: 10s}}\n"
        )
    grpc_port = admin_port = None
    if grpc_upstream_url is not None:
        grpc_port, admin_port = free_port(), free_port()
        config = config.replace("\nupstream:\n", f"\nupstream:\n  grpc_url: {grpc_upstream_url}\n", 1)
        config += f"\ngrpc_listen: 127.0.0.1:{grpc_port}\nadmin_listen: 127.0.0.1:{admin_port}\n"
    config_path.write_text(config)
    env = dict(os.environ)
    env[SECRET_ENV] = secret
    env.update(extra_env or {})
    env.setdefault("RUST_LOG", "info")
    server = _spawn(
        "vecgate",
        [str(binary), "serve", "--config", str(config_path)],
        workdir / "vecgate.log",
        port,
        env=env,
    )
    server.extra["config_path"] = config_path
    server.extra["audit_path"] = audit_path
    if grpc_port is not None:
        server.extra["grpc_port"] = grpc_port
        server.extra["admin_port"] = admin_port
    # A health route; any HTTP answer means the listener is up.
    wait_until_answers(server, health_path)
    return server


def qdrant_kind() -> str:
    """Which Qdrant the Qdrant tests use: "url" (QDRANT_URL, a running real server), "binary"
    (QDRANT_BIN, a real server executable started here) or "double" (tests/qdrant_server)."""
    if os.environ.get("QDRANT_URL", "").strip():
        return "url"
    if os.environ.get("QDRANT_BIN", "").strip():
        return "binary"
    return "double"


class RecordingProxy:
    """Forwards every request to a real Qdrant unchanged and keeps a copy of each
    (`{"method", "path", "query", "headers", "body"}`, the shape of the test double's
    `/__test__/requests`), so a test can see what reached the database whichever Qdrant runs."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}

    def __init__(self, upstream: str):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        self.records: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per answer on kept-alive connections

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = re.sub(r"/{2,}", "/", urlsplit(self.path).path)
                if len(path) > 1 and path.endswith("/"):
                    path = path[:-1]
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                with proxy.lock:
                    proxy.records.append({
                        "method": self.command, "path": path, "query": urlsplit(self.path).query,
                        "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                    })
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP_BY_HOP}
                conn.request(self.command, self.path, body=raw, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in proxy.HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self) -> list[dict]:
        with self.lock:
            return list(self.records)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def recorded_requests(qdrant: Server) -> list[dict]:
    """What reached the Qdrant under test since the last clear: from the double's test-only
    `/__test__/requests` route, or from the RecordingProxy in front of a real server."""
    proxy = qdrant.extra.get("recorder")
    if proxy is not None:
        return proxy.take()
    answer = requests.get(f"{qdrant.url}/__test__/requests", timeout=10)
    answer.raise_for_status()
    return answer.json()["result"]


def clear_recorded_requests(qdrant: Server) -> None:
    proxy = qdrant.extra.get("recorder")
    if proxy is not None:
        proxy.clear()
    else:
        requests.delete(f"{qdrant.url}/__test__/requests", timeout=10).raise_for_status()


def start_qdrant(workdir: Path, api_key: Optional[str] = None) -> Server:
    """A Qdrant on loopback requiring `api-key: <api_key>` on every data route when `api_key`
    is given: the real server of QDRANT_URL (whose key must then be `api_key`), a real
    QDRANT_BIN started on free ports with a temporary storage path, or else the test double
    (tests/qdrant_server, Qdrant Edge inside; its stdin is a pipe that Server.stop() closes,
    and it exits when its stdin closes)."""
    kind = qdrant_kind()
    if kind == "url":
        url = os.environ["QDRANT_URL"].strip().rstrip("/")
        log = workdir / "qdrant.log"
        log.write_text(f"(a running server: {url}; its log is elsewhere)\n")
        proxy = RecordingProxy(url)
        grpc_url = os.environ.get("QDRANT_GRPC_URL", "").strip() or re.sub(
            r":(\d+)$", lambda m: f":{int(m.group(1)) + 1}", url)
        return Server(name="qdrant", proc=None, log_path=log, port=proxy.port,
                      extra={"recorder": proxy, "grpc_url": grpc_url},
                      external_url=f"http://127.0.0.1:{proxy.port}")
    port = free_port()
    grpc_port = free_port()
    if kind == "binary":
        binary = os.environ["QDRANT_BIN"].strip()
        env = dict(os.environ)
        env.update({
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(port),
            "QDRANT__SERVICE__GRPC_PORT": str(grpc_port),
            "QDRANT__STORAGE__STORAGE_PATH": str(workdir / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(workdir / "snapshots"),
            "QDRANT__TELEMETRY_DISABLED": "true",
        })
        env.pop("QDRANT__SERVICE__API_KEY", None)
        if api_key is not None:
            env["QDRANT__SERVICE__API_KEY"] = api_key
        server = _spawn("qdrant", [binary], workdir / "qdrant.log", port, env=env, cwd=workdir)
        wait_until_answers(server, "/readyz", {200})
        proxy = RecordingProxy(server.url)
        server.extra["recorder"] = proxy
        server.extra["grpc_url"] = f"http://127.0.0.1:{grpc_port}"
        server.external_url = f"http://127.0.0.1:{proxy.port}"
        return server
    argv = [sys.executable, str(QDRANT_SERVER), "--host", "127.0.0.1", "--port", str(port),
            "--grpc-port", str(grpc_port), "--storage-dir", str(workdir)]
    if api_key is not None:
        argv += ["--api-key", api_key]
    server = _spawn("qdrant", argv, workdir / "qdrant.log", port, stdin=subprocess.PIPE)
    wait_until_answers(server, "/healthz", {200})
    server.extra["grpc_url"] = f"http://127.0.0.1:{grpc_port}"
    return server


def connect_qdrant(
    server_url: str, token: Optional[str], transport: str = "api_key",
    grpc_port: Optional[int] = None, asynchronous: bool = False,
):
    """The real qdrant-client pointed at `server_url`, sending `token` the two ways its docs
    show: `api_key=` (header or metadata `api-key`) or `auth_token_provider=` (a callable, sent
    as `Authorization: Bearer`). token None: no credentials. Transports "grpc_api_key" and
    "grpc_token_provider" are the same with `prefer_grpc=True` on `grpc_port`;
    `asynchronous`: an AsyncQdrantClient."""
    import warnings

    from qdrant_client import AsyncQdrantClient, QdrantClient

    kwargs: dict = {"url": server_url, "prefer_grpc": False, "timeout": 30}
    if transport.startswith("grpc_"):
        if grpc_port is None:
            raise ValueError("a gRPC transport needs the gRPC port")
        transport = transport.removeprefix("grpc_")
        kwargs.update(prefer_grpc=True, grpc_port=grpc_port)
    if token is not None:
        if transport == "api_key":
            kwargs["api_key"] = token
        elif transport == "token_provider":
            kwargs["auth_token_provider"] = lambda: token
        else:
            raise ValueError(f"unknown transport {transport!r}")
    with warnings.catch_warnings():
        # "Api key is used with an insecure connection": loopback only, on purpose.
        warnings.simplefilter("ignore")
        return (AsyncQdrantClient if asynchronous else QdrantClient)(**kwargs)


def connect(server_url: str, token: Optional[str], transport: str = "bearer") -> chromadb.HttpClient:
    """The real chromadb HTTP client pointed at `server_url`, sending `token` either as a plain
    `Authorization: Bearer` header (transport "bearer") or through chromadb's own token auth
    provider in the `X-Chroma-Token` header (transport "x-chroma-token")."""
    host, port = server_url.removeprefix("http://").split(":")
    if token is None:
        return chromadb.HttpClient(host=host, port=int(port))
    if transport == "bearer":
        return chromadb.HttpClient(
            host=host, port=int(port), headers={"Authorization": f"Bearer {token}"}
        )
    if transport == "x-chroma-token":
        return chromadb.HttpClient(
            host=host,
            port=int(port),
            settings=Settings(
                chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
                chroma_client_auth_credentials=token,
                chroma_auth_token_transport_header="X-Chroma-Token",
            ),
        )
    raise ValueError(f"unknown transport {transport!r}")


def unique_collection_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
