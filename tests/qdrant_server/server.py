"""A Qdrant-compatible REST and gRPC **test double** for vecgate's tests (see README.md beside
this file).

    python tests/qdrant_server/server.py --host 127.0.0.1 --port P [--grpc-port G] [--api-key K]

With `--grpc-port`, the gRPC face (grpc_api.py, over the same store) is bound first and
prints `qdrant test server gRPC listening on HOST:PORT`. Then prints
`qdrant test server listening on http://HOST:PORT` once bound, serves until its stdin
closes (so a test process that dies leaves no orphan). Each collection is one Qdrant Edge shard
in a temporary directory, removed when the server exits.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import signal
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rest_api import RestApi  # noqa: E402
from rest_filter import RestError  # noqa: E402
from store import Store  # noqa: E402

LISTENING_MARKER = "qdrant test server listening on"
# Routes real Qdrant serves without credentials.
OPEN_ROUTES = re.compile(r"^/(?:|healthz|livez|readyz)$")
TEST_ROUTE = "/__test__/requests"
SEG = r"([^/]+)"


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"duplicate field `{key}`")
        out[key] = value
    return out


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (DuplicateKey, ValueError, UnicodeDecodeError) as exc:
        raise RestError(400, f"Format error in JSON body: {exc}") from None


class Recorder:
    """Every request the server received, for tests (GET/DELETE /__test__/requests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.items)

    def clear(self) -> int:
        with self.lock:
            n = len(self.items)
            self.items.clear()
            return n


Handler = Callable[[RestApi, list[str], Any, dict[str, str]], Any]


def _wait(query: dict[str, str]) -> bool:
    return query.get("wait", "false").lower() == "true"


C = rf"/collections/{SEG}"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (m, re.compile(f"^{p}$"), h)
    for m, p, h in [
        ("GET", "/", lambda e, a, b, q: e.root()),
        ("GET", "/collections", lambda e, a, b, q: e.list_collections()),
        ("GET", C, lambda e, a, b, q: e.get_collection(a[0])),
        ("PUT", C, lambda e, a, b, q: e.create_collection(a[0], b)),
        ("PATCH", C, lambda e, a, b, q: e.update_collection(a[0], b)),
        ("DELETE", C, lambda e, a, b, q: e.delete_collection(a[0])),
        ("GET", f"{C}/exists", lambda e, a, b, q: e.collection_exists(a[0])),
        ("PUT", f"{C}/index", lambda e, a, b, q: e.create_index(a[0], b, _wait(q))),
        ("DELETE", f"{C}/index/{SEG}", lambda e, a, b, q: e.delete_index(a[0], a[1], _wait(q))),
        ("PUT", f"{C}/points", lambda e, a, b, q: e.upsert(a[0], b, _wait(q))),
        ("POST", f"{C}/points", lambda e, a, b, q: e.retrieve(a[0], b)),
        ("POST", f"{C}/points/delete", lambda e, a, b, q: e.delete_points(a[0], b, _wait(q))),
        ("POST", f"{C}/points/payload", lambda e, a, b, q: e.set_payload(a[0], b, _wait(q), False)),
        ("PUT", f"{C}/points/payload", lambda e, a, b, q: e.set_payload(a[0], b, _wait(q), True)),
        ("POST", f"{C}/points/payload/delete", lambda e, a, b, q: e.delete_payload(a[0], b, _wait(q))),
        ("POST", f"{C}/points/payload/clear", lambda e, a, b, q: e.clear_payload(a[0], b, _wait(q))),
        ("PUT", f"{C}/points/vectors", lambda e, a, b, q: e.update_vectors(a[0], b, _wait(q))),
        ("POST", f"{C}/points/vectors/delete", lambda e, a, b, q: e.delete_vectors(a[0], b, _wait(q))),
        ("POST", f"{C}/points/batch", lambda e, a, b, q: e.batch(a[0], b, _wait(q))),
        ("POST", f"{C}/points/scroll", lambda e, a, b, q: e.scroll(a[0], b)),
        ("POST", f"{C}/points/count", lambda e, a, b, q: e.count(a[0], b)),
        ("POST", f"{C}/facet", lambda e, a, b, q: e.facet(a[0], b)),
        ("POST", f"{C}/points/query", lambda e, a, b, q: e.query(a[0], b)),
        ("POST", f"{C}/points/query/batch", lambda e, a, b, q: e.query_batch(a[0], b)),
        ("POST", f"{C}/points/query/groups", lambda e, a, b, q: e.query_groups(a[0], b)),
        ("POST", f"{C}/points/search", lambda e, a, b, q: e.legacy(a[0], b, "search")),
        ("POST", f"{C}/points/search/batch", lambda e, a, b, q: e.legacy_batch(a[0], b, "search")),
        ("POST", f"{C}/points/recommend", lambda e, a, b, q: e.legacy(a[0], b, "recommend")),
        ("POST", f"{C}/points/recommend/batch", lambda e, a, b, q: e.legacy_batch(a[0], b, "recommend")),
        ("POST", f"{C}/points/discover", lambda e, a, b, q: e.legacy(a[0], b, "discover")),
        ("POST", f"{C}/points/discover/batch", lambda e, a, b, q: e.legacy_batch(a[0], b, "discover")),
        ("POST", f"{C}/points/search/groups", lambda e, a, b, q: e.legacy_groups(a[0], b, "search")),
        ("POST", f"{C}/points/recommend/groups", lambda e, a, b, q: e.legacy_groups(a[0], b, "recommend")),
        ("POST", f"{C}/points/search/matrix/pairs", lambda e, a, b, q: e.matrix(a[0], b, "pairs")),
        ("POST", f"{C}/points/search/matrix/offsets", lambda e, a, b, q: e.matrix(a[0], b, "offsets")),
        # Routed after the fixed `points/...` routes so they never swallow them.
        ("GET", f"{C}/points/{SEG}", lambda e, a, b, q: e.get_point(a[0], a[1])),
    ]
]

PLAIN_TEXT = {
    "/healthz": "healthz check passed",
    "/livez": "healthz check passed",
    "/readyz": "all shards are ready",
}


def normalise_path(path: str) -> str:
    """Like actix's NormalizePath::trim(): merge repeated slashes, drop a trailing slash."""
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def make_handler(api: RestApi, recorder: Recorder, api_key: str | None) -> type:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, each answer
        # on a kept-alive connection waited ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True
        server_version = "qdrant-test-double"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write("%s %s\n" % (self.address_string(), format % args))

        # ---- plumbing ----------------------------------------------------------------

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                raw = b"".join(chunks)
            else:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "").strip().lower()
            if encoding in ("", "identity"):
                return raw
            if encoding == "gzip":
                return gzip.decompress(raw)
            if encoding == "deflate":
                return zlib.decompress(raw)
            raise RestError(415, f"Unsupported Content-Encoding: {encoding}")

        def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"status": {"error": message}, "time": 0.0})

        def _authorised(self, path: str) -> bool:
            if api_key is None or OPEN_ROUTES.match(path):
                return True
            if self.headers.get("api-key") == api_key:
                return True
            auth = self.headers.get("Authorization", "")
            return auth.startswith("Bearer ") and auth[len("Bearer "):] == api_key

        # ---- dispatch ----------------------------------------------------------------

        def _handle(self) -> None:
            started = time.perf_counter()
            split = urlsplit(self.path)
            path = normalise_path(unquote(split.path))
            query: dict[str, str] = {}
            for part in split.query.split("&"):
                if part:
                    k, _, v = part.partition("=")
                    query[unquote(k)] = unquote(v)
            try:
                raw = self._read_body()
            except RestError as err:
                self._error(err.status, err.message)
                return
            except (ValueError, OSError, zlib.error) as exc:
                self._error(400, f"Format error in JSON body: cannot read the body: {exc}")
                return

            if path == TEST_ROUTE:
                self._test_route()
                return

            text = raw.decode("utf-8", errors="replace")
            try:
                recorded_body: Any = json.loads(text) if text.strip() else None
            except ValueError:
                recorded_body = text
            recorder.add({
                "method": self.command,
                "path": path,
                "query": split.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": recorded_body,
            })

            if not self._authorised(path):
                has_credentials = "api-key" in self.headers or "Authorization" in self.headers
                self._error(
                    401,
                    "Invalid API key or JWT" if has_credentials
                    else "Must provide an API key or an Authorization bearer token",
                )
                return
            if self.command == "GET" and path in PLAIN_TEXT:
                self._send(200, PLAIN_TEXT[path].encode(), "text/plain; charset=utf-8")
                return

            for method, pattern, handler in ROUTES:
                match = pattern.match(path)
                if match is None or method != self.command:
                    continue
                try:
                    body = parse_json(raw)
                    with api.store.lock:
                        result = handler(api, list(match.groups()), body, query)
                except RestError as err:
                    self._error(err.status, err.message)
                    return
                except Exception as exc:  # anything the double did not expect
                    self._error(500, f"Service internal error: {type(exc).__name__}: {exc}")
                    return
                if path == "/":
                    self._send(200, result)
                else:
                    elapsed = time.perf_counter() - started
                    self._send(200, {"result": result, "status": "ok", "time": elapsed})
                return
            self._send(404, b"", "text/plain")

        def _test_route(self) -> None:
            if self.command == "GET":
                self._send(200, {"result": recorder.snapshot(), "status": "ok", "time": 0.0})
            elif self.command == "DELETE":
                self._send(200, {"result": {"cleared": recorder.clear()}, "status": "ok", "time": 0.0})
            else:
                self._error(405, "only GET and DELETE")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return RequestHandler


def _exit_when_stdin_closes(store: Store) -> None:
    try:
        sys.stdin.buffer.read()
    finally:
        store.close()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Qdrant-compatible REST test double (Qdrant Edge engine)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--grpc-port", type=int, default=None, help="also serve the gRPC face on this port")
    parser.add_argument(
        "--storage-dir", default=None,
        help="where the shards' temporary directories go (default: the system's temp dir)",
    )
    parser.add_argument(
        "--no-stdin-watch", action="store_true",
        help="keep running when stdin closes (for manual use from a shell)",
    )
    args = parser.parse_args(argv)

    store = Store(args.storage_dir)
    signal.signal(signal.SIGTERM, lambda *_: (store.close(), os._exit(0)))
    recorder = Recorder()
    api = RestApi(store)
    if args.grpc_port is not None:
        from grpc_api import serve as serve_grpc  # grpcio: only when the gRPC face is asked for

        try:
            _, grpc_port = serve_grpc(api, args.host, args.grpc_port, args.api_key)
        except (OSError, RuntimeError) as exc:
            print(f"qdrant test server: cannot bind {args.host}:{args.grpc_port}: {exc}", flush=True)
            return 3
        print(f"qdrant test server gRPC listening on {args.host}:{grpc_port}", flush=True)
    try:
        httpd = ThreadingHTTPServer((args.host, args.port), make_handler(api, recorder, args.api_key))
    except OSError as exc:
        print(f"qdrant test server: cannot bind {args.host}:{args.port}: {exc}", flush=True)
        return 3
    httpd.daemon_threads = True
    if not args.no_stdin_watch:
        threading.Thread(target=_exit_when_stdin_closes, args=(store,), daemon=True).start()
    host, port = httpd.server_address[:2]
    print(f"{LISTENING_MARKER} http://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
