"""The machinery of the client matrix (test_client_matrix_chroma.py, test_client_matrix_qdrant.py).

Each client of the matrix is one `Client`: how to load documents with it straight into the
database (`seed`), and one scenario of ordinary calls (`scenario`) that returns a transcript,
a list of (step, observed result) pairs. For each person (alice, FINANCE/EMEA; bob, HR/AMER):

1. a "full" collection gets all eight demo documents, and a "view" collection only that
   person's two, both loaded with the client itself straight into the database;
2. the scenario runs through vecgate as that person on the full collection, and straight
   against the database on the view collection;
3. the two transcripts must be equal: through vecgate, a person sees and changes exactly what
   they would if the database held only their own records;
4. the client's attempts on the other department's records (`foreign`) run through vecgate
   only: writes tagged for the other department are refused, writes and deletes of its
   records change nothing (checked straight in the database).

Every request a client sends through vecgate passes a `RecordingProxy` on its way, which notes
the method, route, query parameters and body fields; `client_traffic.py` is the table they
must equal.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

import urllib3

from corpus import DOCUMENTS, ids_for

TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
OTHER = {"alice": "bob", "bob": "alice"}
QUESTION = "What changes next quarter?"


def own_documents(who: str) -> list[tuple[str, str, dict]]:
    """The demo documents `who` may read, in corpus order."""
    mine = ids_for(*TEAM[who])
    return [(i, t, dict(m)) for i, t, m in DOCUMENTS if i in mine]


def all_documents() -> list[tuple[str, str, dict]]:
    return [(i, t, dict(m)) for i, t, m in DOCUMENTS]


@dataclass
class Env:
    """Where a scenario runs: a server (vecgate or the database), the credential (a JWT, the
    database's own key, or None), the collection, and whose view it is."""

    url: str
    token: Optional[str]
    collection: str
    who: str
    through_vecgate: bool
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def team(self) -> tuple[str, str]:
        return TEAM[self.who]

    @property
    def other_team(self) -> tuple[str, str]:
        return TEAM[OTHER[self.who]]

    def own_ids(self) -> list[str]:
        return [i for i, _, _ in own_documents(self.who)]

    def other_ids(self) -> list[str]:
        return [i for i, _, _ in own_documents(OTHER[self.who])]


@dataclass
class Client:
    """One client of the matrix. `seed(env, docs)` loads documents straight into the
    database; `scenario(env)` returns the transcript; `foreign(env)` runs the cross-department
    attempts through vecgate and returns the ids that must be unchanged afterwards."""

    name: str
    version: str
    operations: str
    seed: Callable[[Env, list], None]
    scenario: Callable[[Env], list]
    foreign: Callable[[Env], None]
    # The database-side collection name prefix (selects the collection rule on Qdrant).
    prefix: str = "mx"


class Transcript(list):
    """(step, value) pairs; values are made comparable (floats rounded, sets sorted)."""

    def note(self, step: str, value: Any) -> None:
        self.append((step, comparable(value)))


def comparable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): comparable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(comparable(v) for v in value)
    return value


def ranked(hits, higher_is_better: bool = True) -> list:
    """(id, score) hits in rank order with ties broken by id: points of equal score come back
    in the database's internal order, which differs between two collections holding them."""
    sign = -1 if higher_is_better else 1
    return sorted(([str(i), s] for i, s in hits), key=lambda h: (sign * round(h[1] or 0.0, 4), h[0]))


def assert_same_transcript(through: list, direct: list, label: str) -> None:
    assert [s for s, _ in through] == [s for s, _ in direct], f"{label}: different steps"
    for (step, got), (_, want) in zip(through, direct):
        assert got == want, (
            f"{label}, step {step!r}: through vecgate\n  {json.dumps(got, default=str)[:1500]}\n"
            f"directly on the view\n  {json.dumps(want, default=str)[:1500]}"
        )


def unique_name(prefix: str, client: str, who: str) -> str:
    return f"{prefix}-{client}-{who}-{uuid.uuid4().hex[:8]}".replace("_", "-")


# --------------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------------

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


def route_template(path: str) -> str:
    """A request path with its variable segments named: Chroma's tenant, database and
    collection, Qdrant's collection and point id."""
    segments = path.split("/")
    out = []
    previous = ""
    for index, segment in enumerate(segments):
        if previous == "tenants":
            segment = "{tenant}"
        elif previous == "databases":
            segment = "{database}"
        elif previous == "collections" and segment not in ("", "aliases") and index > 1:
            segment = "{collection}"
        elif previous == "by-id":
            segment = "{collection}"
        elif previous == "points" and segment not in (
            "scroll", "count", "query", "search", "recommend", "discover", "delete",
            "payload", "vectors", "batch",
        ):
            segment = "{id}"
        elif previous == "index":
            segment = "{field}"
        out.append(segment)
        previous = segments[index]
    return "/".join(out)


def body_fields(body: bytes) -> list[str]:
    """The top-level fields of a JSON object body, and one level down under `query` (Qdrant's
    query object) and `batch`/`operations` entries (Qdrant's batch forms)."""
    if not body:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        return ["<not json>"]
    if not isinstance(value, dict):
        return [f"<{type(value).__name__}>"]
    fields = set(value)
    for key in ("query", "batch"):
        inner = value.get(key)
        if isinstance(inner, dict):
            fields.update(f"{key}.{k}" for k in inner)
    for entry in value.get("operations") or []:
        if isinstance(entry, dict):
            fields.update(f"operations.{k}" for k in entry)
    return sorted(fields)


class RecordingProxy:
    """A pass-through HTTP proxy on a free loopback port in front of `target`. Each request is
    forwarded unchanged (minus hop-by-hop headers) and noted under the current label as
    (method, route template, sorted query parameter names, sorted body fields)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.label = "unlabelled"
        self.seen: dict[str, set] = {}
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager(maxsize=16, retries=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
                with proxy._lock:
                    proxy.seen.setdefault(proxy.label, set()).add(
                        (
                            self.command,
                            route_template(parts.path),
                            tuple(query),
                            tuple(body_fields(body)),
                        )
                    )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                answer = proxy._pool.request(
                    self.command,
                    proxy.target + self.path,
                    body=body or None,
                    headers=headers,
                    redirect=False,
                    preload_content=True,
                    timeout=60,
                )
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self, label: str) -> list[dict]:
        """What was recorded under `label`, as sorted rows, and forgets it."""
        with self._lock:
            rows = self.seen.pop(label, set())
        return [
            {"method": m, "route": r, "query": list(q), "body": list(b)}
            for m, r, q, b in sorted(rows)
        ]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def traffic_by_route(rows: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Recorded rows folded per "METHOD route": the union of query parameters and of body
    fields seen on it."""
    out: dict[str, dict[str, set]] = {}
    for row in rows:
        entry = out.setdefault(f"{row['method']} {row['route']}", {"query": set(), "body": set()})
        entry["query"].update(row["query"])
        entry["body"].update(row["body"])
    return {k: {"query": sorted(v["query"]), "body": sorted(v["body"])} for k, v in sorted(out.items())}


def dump_traffic(client: str, traffic: dict) -> bool:
    """With VECGATE_TRAFFIC_DUMP=FILE (a maintainer's switch, never set by the test command),
    appends `client`'s recorded traffic to FILE as one JSON line instead of comparing it:
    how client_traffic.py's entries are taken from a run. True when it did."""
    import os

    path = os.environ.get("VECGATE_TRAFFIC_DUMP")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"client": client, "traffic": traffic}) + "\n")
    return bool(path)
