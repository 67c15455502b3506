"""The real qdrant-client (REST), used exactly as its docs show, talking to vecgate instead of
Qdrant. Only the address and the credential change.

Every test that uses `transport` runs twice: once with `QdrantClient(api_key=<JWT>)` (sent as
the `api-key` header) and once with `QdrantClient(auth_token_provider=lambda: <JWT>)` (sent as
`Authorization: Bearer`).

The collection holds the demo corpus (examples/langchain-chroma/corpus.py) in LangChain's
payload layout `{page_content, metadata: {department, region, topic}}`, with point ids from
examples/langchain-qdrant/point_ids.py: two points for each of FINANCE/HR × EMEA/AMER. alice
is FINANCE/EMEA, bob is HR/AMER; each may see and change only their own two. What is really
stored is checked with a client that talks to Qdrant directly with Qdrant's own API key
(`qdrant_direct`), bypassing vecgate.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from corpus import DOCUMENTS, ids_for
from embeddings import DIMENSIONS, embed_text
from point_ids import point_id
from vecgate_fixtures import clear_recorded_requests, recorded_requests, unique_collection_name

PID = {doc_id: point_id(doc_id) for doc_id, _, _ in DOCUMENTS}
DOC = {pid: doc_id for doc_id, pid in PID.items()}
ALL_IDS = set(PID.values())
TEXT = {PID[doc_id]: text for doc_id, text, _ in DOCUMENTS}
META = {PID[doc_id]: meta for doc_id, _, meta in DOCUMENTS}
OWN = {
    "alice": {PID[d] for d in ids_for("FINANCE", "EMEA")},
    "bob": {PID[d] for d in ids_for("HR", "AMER")},
}
TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
OTHER = {"alice": "bob", "bob": "alice"}
QUESTION = "What changes next quarter?"
LIMIT = 2 * len(DOCUMENTS)  # more than the collection holds

BOBS_POINT = PID["hr-amer-benefits"]
ALICES_POINT = PID["fin-emea-audit"]
# A point that is nobody's: FINANCE but AMER.
NOBODYS_POINT = PID["fin-amer-tax"]


def payload(text: str, **metadata: str) -> dict:
    return {"page_content": text, "metadata": metadata}


def point(pid: str, text: str, **metadata: str) -> models.PointStruct:
    return models.PointStruct(id=pid, vector=embed_text(text), payload=payload(text, **metadata))


def team_of(record) -> tuple[str, str]:
    return (record.payload["metadata"]["department"], record.payload["metadata"]["region"])


def status_of(exc_info) -> int:
    return exc_info.value.status_code


def error_message(exc: UnexpectedResponse) -> str:
    body = json.loads(exc.content)
    return body["status"]["error"]


@pytest.fixture(params=["api_key", "token_provider"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def client_as(qdrant_as, transport):
    """client_as("alice") -> qdrant-client connected to vecgate as alice, with the
    parametrised credential transport."""

    def _client(who):
        return qdrant_as(who, transport)

    return _client


@pytest.fixture
def collection(qdrant_as) -> str:
    """A fresh collection holding the corpus, created and loaded through vecgate by the ingest
    principal (64-dimension cosine, the unnamed dense vector LangChain uses)."""
    name = unique_collection_name("vg-q")
    loader = qdrant_as("ingest")
    loader.create_collection(
        name, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
    )
    loader.upsert(
        name,
        points=[point(PID[doc_id], text, **meta) for doc_id, text, meta in DOCUMENTS],
        wait=True,
    )
    yield name
    try:
        qdrant_as("admin").delete_collection(name)
    except Exception:  # cleanup only; test_only_admin_deletes_a_collection covers deletion
        pass


def stored(direct, name, pid):
    """The payload of point `pid` as really stored (read from Qdrant directly), or None."""
    got = direct.retrieve(name, [pid], with_payload=True)
    return got[0].payload if got else None


def stored_ids(direct, name) -> set[str]:
    points, _ = direct.scroll(name, limit=1000, with_payload=False)
    return {p.id for p in points}


# --------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------


def test_user_creates_and_opens_a_collection(client_as, qdrant_direct):
    name = unique_collection_name("vg-alice-own")
    alice = client_as("alice")
    assert alice.create_collection(
        name, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
    )
    assert alice.collection_exists(name)
    assert alice.get_collection(name).config.params.vectors.size == DIMENSIONS
    assert qdrant_direct.collection_exists(name)
    qdrant_direct.delete_collection(name)


def test_only_admin_deletes_a_collection(client_as, collection, qdrant_direct):
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").delete_collection(collection)
    assert status_of(refused) == 403
    assert qdrant_direct.collection_exists(collection)
    assert qdrant_direct.count(collection).count == len(DOCUMENTS)

    assert client_as("admin").delete_collection(collection)
    assert not qdrant_direct.collection_exists(collection)


# --------------------------------------------------------------------------------------
# Reads: query_points, scroll, count, retrieve, facet
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_query_points_returns_only_own_points(client_as, collection, who):
    hits = client_as(who).query_points(
        collection, query=embed_text(QUESTION), limit=LIMIT, with_payload=True
    ).points
    assert {h.id for h in hits} == OWN[who]
    assert len(hits) == len(OWN[who])
    assert all(team_of(h) == TEAM[who] for h in hits)
    assert all(h.payload["page_content"] == TEXT[h.id] for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_query_points_without_payload_is_filtered_and_trimmed(client_as, collection):
    hits = client_as("bob").query_points(
        collection, query=embed_text(QUESTION), limit=LIMIT, with_payload=False
    ).points
    assert {h.id for h in hits} == OWN["bob"]
    assert all(h.payload is None for h in hits)


def test_query_points_still_ranks_by_meaning(client_as, collection):
    top = client_as("alice").query_points(
        collection, query=embed_text("budget travel spending"), limit=1
    ).points
    assert [h.id for h in top] == [PID["fin-emea-budget"]]
    top = client_as("bob").query_points(
        collection, query=embed_text("health insurance enrolment"), limit=1
    ).points
    assert [h.id for h in top] == [PID["hr-amer-benefits"]]


def test_query_points_ands_the_users_own_filter(client_as, collection):
    alice = client_as("alice")

    def ask(key, value):
        flt = models.Filter(
            must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))]
        )
        return [
            h.id
            for h in alice.query_points(
                collection, query=embed_text(QUESTION), query_filter=flt, limit=LIMIT
            ).points
        ]

    assert ask("metadata.topic", "audit") == [ALICES_POINT]
    # Naming another team finds nothing instead of their points.
    assert ask("metadata.department", "HR") == []
    assert ask("metadata.region", "AMER") == []
    # A filter that would match everything (should with one always-true-for-HR clause) does
    # not widen the view either.
    wide = models.Filter(
        should=[
            models.FieldCondition(key="metadata.department", match=models.MatchValue(value="HR")),
            models.FieldCondition(
                key="metadata.department", match=models.MatchValue(value="FINANCE")
            ),
        ]
    )
    hits = alice.query_points(
        collection, query=embed_text(QUESTION), query_filter=wide, limit=LIMIT
    ).points
    assert {h.id for h in hits} == OWN["alice"]


def test_prefetch_and_fusion_see_only_own_points(client_as, collection):
    hits = client_as("bob").query_points(
        collection,
        prefetch=[
            models.Prefetch(query=embed_text(QUESTION), limit=LIMIT),
            models.Prefetch(query=embed_text("budget audit tax"), limit=LIMIT),
        ],
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=LIMIT,
    ).points
    assert {h.id for h in hits} == OWN["bob"]


def test_query_without_a_vector_acts_as_a_filtered_scroll(client_as, collection):
    hits = client_as("alice").query_points(collection, limit=LIMIT).points
    assert {h.id for h in hits} == OWN["alice"]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_scroll_returns_only_own_points(client_as, collection, who):
    points, next_offset = client_as(who).scroll(collection, limit=LIMIT)
    assert {p.id for p in points} == OWN[who]
    assert next_offset is None
    assert all(p.payload["metadata"] == META[p.id] for p in points)


def test_scroll_with_filter_and_paging(client_as, collection):
    alice = client_as("alice")
    emea = models.Filter(
        must=[models.FieldCondition(key="metadata.region", match=models.MatchValue(value="EMEA"))]
    )
    # HR also has EMEA points; alice still only gets hers.
    points, _ = alice.scroll(collection, scroll_filter=emea, limit=LIMIT)
    assert {p.id for p in points} == OWN["alice"]
    # Page by one: two pages, never a foreign point.
    first, offset = alice.scroll(collection, limit=1)
    assert offset is not None
    second, _ = alice.scroll(collection, limit=1, offset=offset)
    assert {p.id for p in first + second} == OWN["alice"]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_count_counts_only_visible_points(client_as, collection, qdrant_direct, who):
    client = client_as(who)
    assert client.count(collection, exact=True).count == len(OWN[who])
    team = models.Filter(
        must=[
            models.FieldCondition(
                key="metadata.department", match=models.MatchValue(value=TEAM[OTHER[who]][0])
            )
        ]
    )
    assert client.count(collection, count_filter=team, exact=True).count == 0
    assert qdrant_direct.count(collection, exact=True).count == len(DOCUMENTS)


def test_retrieve_leaves_out_foreign_ids(client_as, collection):
    alice = client_as("alice")
    got = alice.retrieve(collection, [PID["fin-emea-budget"], BOBS_POINT, NOBODYS_POINT])
    assert [r.id for r in got] == [PID["fin-emea-budget"]]
    assert got[0].payload["metadata"] == META[PID["fin-emea-budget"]]
    assert alice.retrieve(collection, [BOBS_POINT, NOBODYS_POINT]) == []
    # Asked without payload, the point is still checked and the payload trimmed.
    got = alice.retrieve(collection, [ALICES_POINT, BOBS_POINT], with_payload=False)
    assert [(r.id, r.payload) for r in got] == [(ALICES_POINT, None)]


def test_get_point_by_foreign_id_is_answered_like_a_missing_point(
    vecgate_qdrant, tokens, collection
):
    headers = {"api-key": tokens["alice"]}
    base = f"{vecgate_qdrant.url}/collections/{collection}/points"
    own = requests.get(f"{base}/{ALICES_POINT}", headers=headers, timeout=10)
    assert own.status_code == 200
    assert own.json()["result"]["id"] == ALICES_POINT

    missing_id = str(uuid.uuid4())
    missing = requests.get(f"{base}/{missing_id}", headers=headers, timeout=10)
    foreign = requests.get(f"{base}/{BOBS_POINT}", headers=headers, timeout=10)
    assert missing.status_code == 404
    assert foreign.status_code == 404
    assert foreign.json()["status"]["error"] == missing.json()["status"]["error"].replace(
        missing_id, BOBS_POINT
    )
    assert "result" not in foreign.json()


def _missing_and_foreign_errors(run, missing_id, foreign_id):
    with pytest.raises(UnexpectedResponse) as missing:
        run(missing_id)
    with pytest.raises(UnexpectedResponse) as foreign:
        run(foreign_id)
    return missing.value, foreign.value


QUERY_SHAPES = {
    "nearest-id": lambda pid: {"query": pid},
    "recommend-positive": lambda pid: {
        "query": models.RecommendQuery(recommend=models.RecommendInput(positive=[pid]))
    },
    "recommend-negative": lambda pid: {
        "query": models.RecommendQuery(
            recommend=models.RecommendInput(positive=[embed_text(QUESTION)], negative=[pid])
        )
    },
    "prefetch-id": lambda pid: {
        "prefetch": [models.Prefetch(query=pid, limit=LIMIT)],
        "query": models.FusionQuery(fusion=models.Fusion.RRF),
    },
}


@pytest.mark.parametrize("shape", list(QUERY_SHAPES))
def test_foreign_point_id_as_query_input_is_answered_like_a_missing_point(
    client_as, collection, shape
):
    alice = client_as("alice")
    make = QUERY_SHAPES[shape]

    def run(pid):
        return alice.query_points(collection, limit=LIMIT, **make(pid))

    missing_id = str(uuid.uuid4())
    missing, foreign = _missing_and_foreign_errors(run, missing_id, BOBS_POINT)
    assert missing.status_code == 404
    assert foreign.status_code == missing.status_code
    assert error_message(foreign) == error_message(missing).replace(missing_id, BOBS_POINT)
    # The same query by alice's own point works and still sees only her points.
    hits = run(ALICES_POINT).points
    assert {h.id for h in hits} <= OWN["alice"]
    assert hits


def test_recommend_from_own_point_sees_only_own_points(client_as, collection):
    hits = client_as("alice").query_points(
        collection,
        query=models.RecommendQuery(recommend=models.RecommendInput(positive=[ALICES_POINT])),
        limit=LIMIT,
    ).points
    # Qdrant leaves the example itself out of the answer.
    assert {h.id for h in hits} == OWN["alice"] - {ALICES_POINT}


def test_facet_counts_only_visible_points(client_as, collection, qdrant_direct):
    # Real Qdrant facets only over keyword-indexed keys; creating an index is collection
    # administration, which the policy leaves to the admin.
    admin = client_as("admin")
    for key in ("metadata.topic", "metadata.department"):
        admin.create_payload_index(collection, key, field_schema=models.PayloadSchemaType.KEYWORD)
    hits = client_as("alice").facet(collection, key="metadata.topic", exact=True).hits
    assert {(h.value, h.count) for h in hits} == {("budget", 1), ("audit", 1)}
    everything = qdrant_direct.facet(collection, key="metadata.department", exact=True).hits
    assert {(h.value, h.count) for h in everything} == {("FINANCE", 4), ("HR", 4)}
    mine = client_as("alice").facet(collection, key="metadata.department", exact=True).hits
    assert {(h.value, h.count) for h in mine} == {("FINANCE", 2)}


# --------------------------------------------------------------------------------------
# Writes: upsert, set_payload, update_vectors, delete
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_upsert_for_own_department(client_as, collection, qdrant_direct, who):
    department, region = TEAM[who]
    pid = str(uuid.uuid4())
    text = f"{department} {region}: the office closes early on Friday."
    client_as(who).upsert(
        collection, points=[point(pid, text, department=department, region=region, topic="office")]
    )
    assert stored(qdrant_direct, collection, pid) == payload(
        text, department=department, region=region, topic="office"
    )
    assert pid in {p.id for p in client_as(who).scroll(collection, limit=LIMIT)[0]}
    assert pid not in {p.id for p in client_as(OTHER[who]).scroll(collection, limit=LIMIT)[0]}


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_upsert_for_another_department_is_refused(client_as, collection, qdrant_direct, who):
    department, region = TEAM[OTHER[who]]
    pid = str(uuid.uuid4())
    with pytest.raises(UnexpectedResponse) as refused:
        client_as(who).upsert(
            collection,
            points=[point(pid, "a note planted for another team", department=department, region=region)],
        )
    assert status_of(refused) == 403
    assert stored(qdrant_direct, collection, pid) is None
    assert qdrant_direct.count(collection, exact=True).count == len(DOCUMENTS)


def test_batch_with_one_refused_point_writes_nothing(client_as, collection, qdrant_direct):
    ok, bad = str(uuid.uuid4()), str(uuid.uuid4())
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").upsert(
            collection,
            points=[
                point(ok, "mine", department="FINANCE", region="EMEA"),
                point(bad, "not mine", department="FINANCE", region="AMER"),
            ],
        )
    assert status_of(refused) == 403
    assert stored(qdrant_direct, collection, ok) is None
    assert stored(qdrant_direct, collection, bad) is None


def test_upsert_over_a_foreign_point_is_refused(client_as, collection, qdrant_direct):
    before = stored(qdrant_direct, collection, BOBS_POINT)
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").upsert(
            collection,
            points=[point(BOBS_POINT, "taken over by alice", department="FINANCE", region="EMEA")],
        )
    assert status_of(refused) == 403
    assert stored(qdrant_direct, collection, BOBS_POINT) == before


def test_upsert_of_own_point(client_as, collection, qdrant_direct):
    text = "Finance EMEA: the audit now starts in April."
    client_as("alice").upsert(
        collection,
        points=[point(ALICES_POINT, text, department="FINANCE", region="EMEA", topic="audit")],
    )
    assert stored(qdrant_direct, collection, ALICES_POINT)["page_content"] == text


def test_write_without_required_attributes_is_refused(client_as, collection, qdrant_direct):
    # Even the loader, which may create anything, cannot store a point that lacks the
    # attributes the read filter relies on.
    pid = str(uuid.uuid4())
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("ingest").upsert(collection, points=[point(pid, "untagged", topic="misc")])
    assert status_of(refused) == 403
    assert stored(qdrant_direct, collection, pid) is None


def test_set_payload_of_a_foreign_point_is_answered_as_for_a_missing_point(client_as, collection, qdrant_direct):
    # alice may not read bob's point, so a payload change of it gets exactly Qdrant's answer
    # for a point it does not have (404 naming it), and nothing changes.
    before = stored(qdrant_direct, collection, BOBS_POINT)
    alice = client_as("alice")
    with pytest.raises(UnexpectedResponse) as refused:
        alice.set_payload(
            collection,
            payload={"department": "FINANCE", "region": "EMEA"},
            points=[BOBS_POINT],
            key="metadata",
        )
    assert status_of(refused) == 404
    assert error_message(refused.value) == f"Not found: No point with id {BOBS_POINT} found"
    with pytest.raises(UnexpectedResponse) as refused:
        alice.set_payload(collection, payload={"page_content": "vandalised"}, points=[BOBS_POINT])
    assert status_of(refused) == 404
    assert error_message(refused.value) == f"Not found: No point with id {BOBS_POINT} found"
    with pytest.raises(UnexpectedResponse) as refused:
        alice.overwrite_payload(
            collection,
            payload=payload("taken over", department="FINANCE", region="EMEA"),
            points=[BOBS_POINT],
        )
    assert status_of(refused) == 404
    assert error_message(refused.value) == f"Not found: No point with id {BOBS_POINT} found"
    assert stored(qdrant_direct, collection, BOBS_POINT) == before


def test_set_payload_moving_own_point_to_another_department_is_refused(
    client_as, collection, qdrant_direct
):
    before = stored(qdrant_direct, collection, ALICES_POINT)
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").set_payload(
            collection, payload={"department": "HR"}, points=[ALICES_POINT], key="metadata"
        )
    assert status_of(refused) == 403
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").set_payload(
            collection,
            payload={"metadata": {"department": "HR", "region": "AMER"}},
            points=[ALICES_POINT],
        )
    assert status_of(refused) == 403
    assert stored(qdrant_direct, collection, ALICES_POINT) == before


def test_set_payload_on_own_point(client_as, collection, qdrant_direct):
    client_as("alice").set_payload(
        collection, payload={"topic": "audit-2026"}, points=[ALICES_POINT], key="metadata"
    )
    assert stored(qdrant_direct, collection, ALICES_POINT)["metadata"] == {
        "department": "FINANCE",
        "region": "EMEA",
        "topic": "audit-2026",
    }


def test_update_vectors_of_a_foreign_point_changes_nothing(client_as, collection, qdrant_direct):
    before = qdrant_direct.retrieve(collection, [BOBS_POINT], with_vectors=True)[0].vector
    with pytest.raises(UnexpectedResponse) as refused:
        client_as("alice").update_vectors(
            collection,
            points=[models.PointVectors(id=BOBS_POINT, vector=embed_text("poisoned vector"))],
        )
    assert status_of(refused) == 404  # as for a point Qdrant does not have
    after = qdrant_direct.retrieve(collection, [BOBS_POINT], with_vectors=True)[0].vector
    assert after == before


def test_delete_of_foreign_ids_deletes_nothing(client_as, collection, qdrant_direct):
    try:
        client_as("alice").delete(
            collection, points_selector=models.PointIdsList(points=[BOBS_POINT, NOBODYS_POINT])
        )
    except UnexpectedResponse:
        pass  # refusing outright is as good as deleting nothing; what counts is the data
    assert stored_ids(qdrant_direct, collection) == ALL_IDS
    # And as the admin sees it through vecgate.
    points, _ = client_as("admin").scroll(collection, limit=LIMIT)
    assert {p.id for p in points} == ALL_IDS


def test_delete_of_mixed_ids_deletes_only_own(client_as, collection, qdrant_direct):
    try:
        client_as("alice").delete(collection, points_selector=[ALICES_POINT, BOBS_POINT])
    except UnexpectedResponse:
        # Refusing the whole request is also safe; then nothing at all may be gone.
        assert stored_ids(qdrant_direct, collection) == ALL_IDS
        return
    assert stored_ids(qdrant_direct, collection) == ALL_IDS - {ALICES_POINT}


def test_delete_of_own_id(client_as, collection, qdrant_direct):
    client_as("alice").delete(collection, points_selector=[ALICES_POINT])
    assert stored_ids(qdrant_direct, collection) == ALL_IDS - {ALICES_POINT}


def test_delete_by_filter_deletes_only_own_points(client_as, collection, qdrant_direct):
    budget = models.Filter(
        must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="budget"))]
    )
    client_as("alice").delete(collection, points_selector=models.FilterSelector(filter=budget))
    assert stored_ids(qdrant_direct, collection) == ALL_IDS - {PID["fin-emea-budget"]}


# --------------------------------------------------------------------------------------
# Authentication, credentials, error shape
# --------------------------------------------------------------------------------------


def test_client_without_credentials_is_refused(qdrant_as, collection, qdrant_direct):
    anonymous = qdrant_as(None)
    with pytest.raises(UnexpectedResponse) as refused:
        anonymous.scroll(collection)
    assert status_of(refused) == 401
    with pytest.raises(UnexpectedResponse) as refused:
        anonymous.upsert(
            collection, points=[point(str(uuid.uuid4()), "anon", department="HR", region="AMER")]
        )
    assert status_of(refused) == 401
    assert qdrant_direct.count(collection, exact=True).count == len(DOCUMENTS)


@pytest.mark.parametrize(
    "header,bad",
    [("api-key", None)]
    + [(h, b) for h in ("api-key", "Authorization") for b in ("garbage", "expired", "wrong_secret")],
)
def test_missing_or_bad_token_is_401(vecgate_qdrant, tokens, collection, header, bad):
    url = f"{vecgate_qdrant.url}/collections/{collection}/points/scroll"

    def headers_with(token):
        if token is None:
            return {}
        return {header: f"Bearer {token}" if header == "Authorization" else token}

    resp = requests.post(url, json={"limit": LIMIT}, headers=headers_with(tokens.get(bad)), timeout=10)
    assert resp.status_code == 401
    assert "Bearer" in resp.headers.get("WWW-Authenticate", "")
    assert isinstance(resp.json()["status"]["error"], str)
    # The same request with a good token works, so the 401 is about the token.
    resp = requests.post(url, json={"limit": LIMIT}, headers=headers_with(tokens["alice"]), timeout=10)
    assert resp.status_code == 200
    assert {p["id"] for p in resp.json()["result"]["points"]} == OWN["alice"]


def test_qdrant_api_key_is_vecgates_and_the_callers_token_is_never_forwarded(
    qdrant, qdrant_api_key, tokens, client_as, collection
):
    clear_recorded_requests(qdrant)
    alice = client_as("alice")
    alice.scroll(collection, limit=LIMIT)
    alice.query_points(collection, query=embed_text(QUESTION), limit=LIMIT)
    alice.upsert(
        collection,
        points=[point(str(uuid.uuid4()), "mine", department="FINANCE", region="EMEA")],
    )
    seen = recorded_requests(qdrant)
    paths = [r["path"] for r in seen]
    assert any(p.endswith("/points/scroll") for p in paths), paths
    assert any(p.endswith("/points/query") for p in paths), paths
    for request in seen:
        headers = request["headers"]
        assert headers.get("api-key") == qdrant_api_key, request["path"]
        assert "authorization" not in headers or tokens["alice"] not in headers["authorization"]
        assert not any(tokens["alice"] in str(v) for v in headers.values()), request["path"]


def test_denied_write_is_403_in_qdrants_error_shape(vecgate_qdrant, tokens, collection, qdrant_direct):
    pid = str(uuid.uuid4())
    resp = requests.put(
        f"{vecgate_qdrant.url}/collections/{collection}/points?wait=true",
        json={
            "points": [
                {
                    "id": pid,
                    "vector": embed_text("raw"),
                    "payload": payload("raw", department="HR", region="AMER"),
                }
            ]
        },
        headers={"api-key": tokens["alice"]},
        timeout=10,
    )
    assert resp.status_code == 403
    body = resp.json()
    assert isinstance(body["status"]["error"], str) and body["status"]["error"]
    assert "time" in body and "result" not in body
    assert stored(qdrant_direct, collection, pid) is None
