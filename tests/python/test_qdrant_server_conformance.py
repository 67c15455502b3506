"""The Qdrant test server (tests/qdrant_server) against answers measured on real Qdrant.

Expected answers come from tests/fixtures/qdrant-measured.md (a copy of the project's
ref/qdrant-measured.md), parsed here at test time:

* section 4, the live request/response examples: replayed in order, bodies compared;
* section 5, the 67 filter cases: each filter is sent to scroll, count, search and query on
  18 points, once without and once with keyword payload indexes, and the ids (or the error
  status) are compared with the v1.19.0 server columns;
* the "Beyond the filter" facts: prefetch filtering, ids as query inputs, lookup_from, ...

Where the double cannot behave like the measured server, the row is listed in KNOWN_DIVERGENCES
with the reason (none today). Any other difference fails the test, and so does a listed divergence that no
longer differs (so the list cannot go stale).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "qdrant_server" / "server.py"
MEASURED = REPO / "tests" / "fixtures" / "qdrant-measured.md"
ENDPOINTS = ("scroll", "count", "search", "query")
VARIANTS = ("no_index", "keyword_index")
INDEXED_FIELDS = ("department", "metadata.department", "metadata[].department", "region")

# (row, variant) -> why the double answers differently from the measured server. Empty since
# the double's engine is Qdrant Edge (Qdrant's own segment code, payload indexes included).
KNOWN_DIVERGENCES: dict[tuple[int, str], str] = {}


# ---------------------------------------------------------------------------------------------
# the measured reference


def _measured_text() -> str:
    return MEASURED.read_text(encoding="utf-8")


def _payloads(text: str) -> dict[int, dict[str, Any]]:
    """`Payloads: 1 `{...}` · 2 `{...}` ...` -> {1: {...}, 2: {...}}."""
    start = text.index("Payloads:")
    end = text.index("How to read the table:")
    block = text[start:end].replace("\n", " ")
    found = {int(n): json.loads(p) for n, p in re.findall(r"(\d+) `(\{.*?\})`", block)}
    assert sorted(found) == list(range(1, 19)), f"expected payloads 1..18, parsed {sorted(found)}"
    return found


def _split_row(line: str) -> list[str]:
    # Cells are separated by " | "; filters contain no pipe characters.
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return cells


def _expected(cell: str, all_ids: list[int]) -> Any:
    """A table cell -> sorted id list, or ("error", status)."""
    cell = cell.strip()
    versions = re.match(r"1\.18\.3: (.*); 1\.19\.0: (.*)$", cell)
    if versions:
        cell = versions.group(2).strip()  # the test server claims 1.19.0
    if cell == "ALL":
        return list(all_ids)
    if cell == "none":
        return []
    err = re.match(r"(\d{3}) \(", cell)
    if err:
        return ("error", int(err.group(1)))
    return sorted(int(x) for x in cell.split(","))


def filter_cases() -> list[dict[str, Any]]:
    text = _measured_text()
    all_ids = sorted(_payloads(text))
    cases = []
    for line in text.splitlines():
        if not re.match(r"^\| \d+ \| `", line):
            continue
        cells = _split_row(line)
        number, filt, no_index, with_index = cells[0], cells[1], cells[2], cells[3]
        expected_no_index = _expected(no_index, all_ids)
        expected_index = expected_no_index if with_index == "same" else _expected(with_index, all_ids)
        cases.append({
            "row": int(number),
            "filter": json.loads(filt.strip("`")),
            "no_index": expected_no_index,
            "keyword_index": expected_index,
        })
    assert [c["row"] for c in cases] == list(range(1, 68)), "expected filter rows 1..67"
    return cases


def live_examples() -> list[dict[str, Any]]:
    """Section 4: `METHOD PATH` / JSON body / `-> STATUS JSON`, separated by blank lines."""
    text = _measured_text()
    section = text[text.index("## 4."):text.index("## 5.")]
    block = section[section.index("```text") + len("```text"):]
    block = block[:block.index("```")]
    examples = []
    for chunk in re.split(r"\n\s*\n", block.strip()):
        head, _, rest = chunk.partition("\n")
        method, path = head.split(" ", 1)
        body_text, _, answer = rest.partition("-> ")
        answer = re.sub(r"\s+#.*$", "", answer.strip())
        status, _, answer_json = answer.partition(" ")
        examples.append({
            "method": method,
            "path": path.strip(),
            "body": json.loads(body_text),
            "status": int(status),
            "answer": json.loads(answer_json),
        })
    assert len(examples) >= 8, f"parsed only {len(examples)} live examples"
    return examples


# ---------------------------------------------------------------------------------------------
# the server


class Server:
    def __init__(self, url: str, proc: subprocess.Popen):
        self.url = url
        self.proc = proc

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> requests.Response:
        kwargs: dict[str, Any] = {"timeout": 30}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        return requests.request(method, self.url + path, **kwargs)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.call(method, path, body)
        assert resp.status_code == 200, f"{method} {path} {body}: {resp.status_code} {resp.text}"
        answer = resp.json()
        assert answer["status"] == "ok", answer
        return answer["result"]


@pytest.fixture(scope="module")
def server():
    python = os.environ.get("VECGATE_PYTHON") or sys.executable
    proc = subprocess.Popen(
        [python, str(SERVER), "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    assert match, f"server did not start: {line!r}"
    yield Server(match.group(1), proc)
    assert proc.stdin is not None
    proc.stdin.close()  # the server exits when its stdin closes
    proc.wait(timeout=10)


def _vector(pid: int) -> list[float]:
    return [1.0, pid / 10.0, (pid % 3) / 3.0 + 0.1, 0.5]


def _filter_collection(server: Server, name: str, indexed: bool) -> None:
    server.call("DELETE", f"/collections/{name}")
    server.ok("PUT", f"/collections/{name}", {"vectors": {"size": 4, "distance": "Cosine"}})
    if indexed:
        for field in INDEXED_FIELDS:
            server.ok("PUT", f"/collections/{name}/index?wait=true",
                      {"field_name": field, "field_schema": "keyword"})
    points = [{"id": pid, "vector": _vector(pid), "payload": payload}
              for pid, payload in _payloads(_measured_text()).items()]
    server.ok("PUT", f"/collections/{name}/points?wait=true", {"points": points})


def _ask(server: Server, collection: str, endpoint: str, flt: Any) -> Any:
    """One filter on one endpoint -> sorted ids, or ("error", status)."""
    bodies = {
        "scroll": {"filter": flt, "limit": 100},
        "count": {"filter": flt, "exact": True},
        "search": {"vector": [0.5, 0.5, 0.5, 0.5], "filter": flt, "limit": 100},
        "query": {"query": [0.5, 0.5, 0.5, 0.5], "filter": flt, "limit": 100},
    }
    resp = server.call("POST", f"/collections/{collection}/points/{endpoint}", bodies[endpoint])
    if resp.status_code != 200:
        answer = resp.json()
        assert set(answer) == {"status", "time"} and isinstance(answer["status"]["error"], str), answer
        return ("error", resp.status_code)
    result = resp.json()["result"]
    if endpoint == "count":
        return ("count", result["count"])
    hits = result if endpoint == "search" else result["points"]
    return sorted(h["id"] for h in hits)


def _same(got: Any, expected: Any) -> bool:
    if isinstance(got, tuple) and got[0] == "count":
        return isinstance(expected, list) and got[1] == len(expected)
    return got == expected


# ---------------------------------------------------------------------------------------------
# tests


def test_reference_parses():
    cases = filter_cases()
    assert len(cases) == 67
    assert cases[0]["no_index"] == [1, 4]
    assert cases[14]["no_index"] == ("error", 400)
    assert cases[44]["no_index"] == []  # the v1.19.0 answer of row 45
    assert len(live_examples()) == 8


def test_filter_table(server: Server):
    cases = filter_cases()
    report: dict[str, list[int]] = {v: [] for v in VARIANTS}
    unexpected, stale = [], []
    for variant in VARIANTS:
        collection = f"measured_{variant}"
        _filter_collection(server, collection, indexed=variant == "keyword_index")
        for case in cases:
            expected = case[variant]
            answers = {ep: _ask(server, collection, ep, case["filter"]) for ep in ENDPOINTS}
            matches = all(_same(a, expected) for a in answers.values())
            known = (case["row"], variant) in KNOWN_DIVERGENCES
            if matches:
                report[variant].append(case["row"])
                if known:
                    stale.append(f"row {case['row']} ({variant}) now matches; remove it from KNOWN_DIVERGENCES")
            elif not known:
                unexpected.append(
                    f"row {case['row']} ({variant}) {json.dumps(case['filter'])}: "
                    f"expected {expected}, got {answers}"
                )
    print()
    for variant in VARIANTS:
        print(f"qdrant-measured.md filter rows matching ({variant}): {len(report[variant])}/67")
    for (row, variant), reason in sorted(KNOWN_DIVERGENCES.items()):
        print(f"  known divergence row {row} ({variant}): {reason}")
    assert not unexpected, "\n".join(unexpected)
    assert not stale, "\n".join(stale)


def _assert_like(got: Any, expected: Any, where: str) -> None:
    """Equal JSON, with float scores compared to 1e-5 and `time` ignored."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: {got} != {expected}"
        for key in expected:
            if key == "time":
                assert isinstance(got[key], (int, float)), f"{where}.time: {got[key]}"
                continue
            _assert_like(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {got} != {expected}"
        for i, (g, e) in enumerate(zip(got, expected)):
            _assert_like(g, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(got, (int, float)) and math.isclose(got, expected, rel_tol=1e-5), (
            f"{where}: {got} != {expected}"
        )
    else:
        assert got == expected and type(got) is type(expected), f"{where}: {got!r} != {expected!r}"


def test_live_examples(server: Server):
    server.call("DELETE", "/collections/demo")
    for n, example in enumerate(live_examples()):
        resp = server.call(example["method"], example["path"], example["body"])
        where = f"example {n} {example['method']} {example['path']}"
        assert resp.status_code == example["status"], f"{where}: {resp.status_code} {resp.text}"
        _assert_like(resp.json(), example["answer"], where)


# ---- "Beyond the filter" ----------------------------------------------------------------------

FINANCE = {"must": [{"key": "department", "match": {"value": "FINANCE"}}]}


@pytest.fixture(scope="module")
def demo(server: Server) -> str:
    """The five points of the live examples, in a collection of their own, plus `other`."""
    name = "beyond"
    server.call("DELETE", f"/collections/{name}")
    server.ok("PUT", f"/collections/{name}", {"vectors": {"size": 4, "distance": "Cosine"}})
    upsert = next(e for e in live_examples() if e["method"] == "PUT" and "/points" in e["path"])
    server.ok("PUT", f"/collections/{name}/points?wait=true", upsert["body"])
    server.call("DELETE", "/collections/other")
    server.ok("PUT", "/collections/other", {"vectors": {"size": 4, "distance": "Cosine"}})
    server.ok("PUT", "/collections/other/points?wait=true",
              {"points": [{"id": 77, "vector": [0.9, 0.1, 0.1, 0.1], "payload": {}}]})
    return name


def _ids(points: list[dict[str, Any]]) -> list[Any]:
    return sorted(p["id"] for p in points)


def test_top_level_filter_applies_to_prefetches(server: Server, demo: str):
    body = {"prefetch": [{"query": [0.2, 0.1, 0.9, 0.7], "limit": 10},
                         {"query": [0.9, 0.1, 0.1, 0.1], "limit": 10}],
            "query": {"fusion": "rrf"}, "filter": FINANCE, "limit": 10}
    assert _ids(server.ok("POST", f"/collections/{demo}/points/query", body)["points"]) == [1, 4]


def test_filter_inside_one_prefetch_does_not_constrain_the_fusion(server: Server, demo: str):
    body = {"prefetch": [{"query": [0.2, 0.1, 0.9, 0.7], "filter": FINANCE, "limit": 10},
                         {"query": [0.9, 0.1, 0.1, 0.1], "limit": 10}],
            "query": {"fusion": "rrf"}, "limit": 10}
    assert _ids(server.ok("POST", f"/collections/{demo}/points/query", body)["points"]) == [1, 2, 3, 4, 5]


def test_point_ids_as_query_inputs_bypass_the_filter(server: Server, demo: str):
    by_id = server.ok("POST", f"/collections/{demo}/points/query", {"query": 2, "filter": FINANCE})
    assert _ids(by_id["points"]) == [1, 4]
    reco = server.ok("POST", f"/collections/{demo}/points/query",
                     {"query": {"recommend": {"positive": [2], "negative": [3]}}, "filter": FINANCE})
    assert _ids(reco["points"]) == [1, 4]
    lookup = server.ok("POST", f"/collections/{demo}/points/query",
                       {"query": 77, "lookup_from": {"collection": "other"}, "filter": FINANCE})
    assert _ids(lookup["points"]) == [1, 4]


def test_missing_point_id_as_query_input_is_a_404(server: Server, demo: str):
    for body in ({"query": 999}, {"query": {"recommend": {"positive": [999]}}},
                 {"prefetch": [{"query": 999}], "query": {"fusion": "rrf"}}):
        resp = server.call("POST", f"/collections/{demo}/points/query", body)
        assert resp.status_code == 404, (body, resp.text)
        assert resp.json()["status"]["error"] == "Not found: No point with id 999 found"


def test_by_id_reads_take_no_filter(server: Server, demo: str):
    point = server.ok("GET", f"/collections/{demo}/points/2")
    assert point["id"] == 2 and point["payload"]["department"] == "HR" and len(point["vector"]) == 4
    records = server.ok("POST", f"/collections/{demo}/points", {"ids": [2, 3, 999]})
    assert _ids(records) == [2, 3]
    assert all("vector" not in r for r in records)
    missing = server.call("GET", f"/collections/{demo}/points/999")
    assert missing.status_code == 404
    assert missing.json() == {"status": {"error": "Not found: Point with id 999 does not exists!"},
                              "time": missing.json()["time"]}


def test_filter_honoured_by_facet_groups_batches_and_matrix(server: Server, demo: str):
    # Faceting needs a payload index, on the server as in Qdrant Edge.
    server.ok("PUT", f"/collections/{demo}/index?wait=true", {"field_name": "region", "field_schema": "keyword"})
    facet = server.ok("POST", f"/collections/{demo}/facet", {"key": "region", "filter": FINANCE})
    assert facet == {"hits": [{"value": "EMEA", "count": 2}]}
    groups = server.ok("POST", f"/collections/{demo}/points/query/groups",
                       {"query": [0.2, 0.1, 0.9, 0.7], "group_by": "region", "filter": FINANCE})
    assert [g["id"] for g in groups["groups"]] == ["EMEA"]
    assert _ids(groups["groups"][0]["hits"]) == [1, 4]
    search_batch = server.ok("POST", f"/collections/{demo}/points/search/batch", {"searches": [
        {"vector": [0.2, 0.1, 0.9, 0.7], "filter": FINANCE, "limit": 10},
        {"vector": [0.2, 0.1, 0.9, 0.7], "limit": 10}]})
    assert [_ids(r) for r in search_batch] == [[1, 4], [1, 2, 3, 4, 5]]
    query_batch = server.ok("POST", f"/collections/{demo}/points/query/batch", {"searches": [
        {"query": [0.2, 0.1, 0.9, 0.7], "filter": FINANCE}, {"query": [0.2, 0.1, 0.9, 0.7]}]})
    assert [_ids(r["points"]) for r in query_batch] == [[1, 4], [1, 2, 3, 4, 5]]
    pairs = server.ok("POST", f"/collections/{demo}/points/search/matrix/pairs",
                      {"filter": FINANCE, "sample": 10, "limit": 1})
    assert {p["a"] for p in pairs["pairs"]} | {p["b"] for p in pairs["pairs"]} == {1, 4}


def test_query_without_vector_acts_as_scroll(server: Server, demo: str):
    plain = server.ok("POST", f"/collections/{demo}/points/query", {"filter": FINANCE})
    assert _ids(plain["points"]) == [1, 4]
    sample = server.ok("POST", f"/collections/{demo}/points/query",
                       {"query": {"sample": "random"}, "filter": FINANCE})
    assert _ids(sample["points"]) == [1, 4]


def test_unknown_request_field_is_ignored_but_duplicate_keys_are_not(server: Server, demo: str):
    for endpoint, extra in (("scroll", {}), ("count", {}), ("query", {}),
                            ("search", {"vector": [0.1, 0.1, 0.1, 0.1], "limit": 10})):
        resp = server.call("POST", f"/collections/{demo}/points/{endpoint}", {"filtr": FINANCE, **extra})
        assert resp.status_code == 200, (endpoint, resp.text)
        result = resp.json()["result"]
        if endpoint == "count":
            assert result["count"] == 5
        else:
            assert _ids(result if endpoint == "search" else result["points"]) == [1, 2, 3, 4, 5]
    dup = server.call("POST", f"/collections/{demo}/points/scroll",
                      raw=b'{"filter":{"must":[]},"filter":{"must":[]}}')
    assert dup.status_code == 400 and dup.json()["status"]["error"].startswith("Format error in JSON body")


def test_missing_collection_is_a_404_everywhere(server: Server):
    for method, path, body in (("GET", "/collections/nope", None),
                               ("POST", "/collections/nope/points/scroll", {}),
                               ("POST", "/collections/nope/points/query", {}),
                               ("PUT", "/collections/nope/points", {"points": []})):
        resp = server.call(method, path, body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["status"] == {"error": "Not found: Collection `nope` doesn't exist!"}


# ---- the real SDKs in REST mode -------------------------------------------------------------


def test_qdrant_client_and_langchain_qdrant_work_against_it(server: Server):
    import warnings

    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    warnings.simplefilter("ignore")  # api key over plain http, version check
    client = QdrantClient(url=server.url, prefer_grpc=False)
    client.create_collection(
        "sdk", vectors_config={"": models.VectorParams(size=3, distance=models.Distance.COSINE)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    uid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
    client.upsert("sdk", [
        models.PointStruct(id=1, vector={"": [1, 0, 0], "sparse": models.SparseVector(indices=[1], values=[1.0])},
                           payload={"metadata": {"dept": "eng"}}),
        models.PointStruct(id=uid, vector={"": [0, 1, 0], "sparse": models.SparseVector(indices=[2], values=[1.0])},
                           payload={"metadata": {"dept": "hr"}}),
    ])
    eng = models.Filter(must=[models.FieldCondition(key="metadata.dept", match=models.MatchValue(value="eng"))])
    assert [p.id for p in client.query_points("sdk", query=[0, 1, 0], using="", query_filter=eng).points] == [1]
    hybrid = client.query_points("sdk", prefetch=[
        models.Prefetch(query=[0, 1, 0], using="", limit=5),
        models.Prefetch(query=models.SparseVector(indices=[2], values=[1.0]), using="sparse", limit=5),
    ], query=models.FusionQuery(fusion=models.Fusion.RRF))
    assert [p.id for p in hybrid.points] == [uid, 1]
    assert {r.id for r in client.retrieve("sdk", [1, uid, 7])} == {1, uid}
    assert client.count("sdk", count_filter=eng).count == 1
    client.set_payload("sdk", {"x": 1}, points=[1])
    assert client.retrieve("sdk", [1])[0].payload == {"metadata": {"dept": "eng"}, "x": 1}
    client.delete("sdk", points_selector=models.FilterSelector(filter=eng))
    assert [r.id for r in client.scroll("sdk")[0]] == [uid]

    store = QdrantVectorStore.from_texts(
        ["alpha", "beta", "gamma"], DeterministicFakeEmbedding(size=8),
        metadatas=[{"dept": "eng"}, {"dept": "hr"}, {"dept": "eng"}],
        url=server.url, collection_name="langchain",
    )
    lc_eng = models.Filter(must=[models.FieldCondition(key="metadata.dept", match=models.MatchValue(value="eng"))])
    docs = store.similarity_search("alpha", k=3, filter=lc_eng)
    assert sorted(d.page_content for d in docs) == ["alpha", "gamma"]
    assert store.similarity_search("alpha", k=1)[0].page_content == "alpha"
    assert len(store.max_marginal_relevance_search("alpha", k=2, fetch_k=3)) == 2
    ids = store.add_texts(["delta"], metadatas=[{"dept": "ops"}])
    assert [d.page_content for d in store.get_by_ids(ids)] == ["delta"]
    store.delete(ids)
    assert store.get_by_ids(ids) == []
