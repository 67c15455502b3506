"""The real qdrant-client with `prefer_grpc=True`, sync and async, talking to vecgate's gRPC
listener instead of Qdrant's port 6334. Only the address, the port and the credential change:
`api_key=<JWT>` (metadata `api-key`) or `auth_token_provider=lambda: <JWT>` (metadata
`authorization: Bearer`).

The collection holds the demo corpus in LangChain's payload layout; alice (FINANCE/EMEA) and
bob (HR/AMER) may see and change only their own two points each. What is really stored is
checked straight against Qdrant with its own API key (`qdrant_direct`, REST); what reached the
database is read from vecgate's own count of upstream exchanges on its admin port.
"""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
import requests
from qdrant_client import models

from corpus import DOCUMENTS, ids_for
from embeddings import DIMENSIONS, embed_text
from point_ids import point_id
from vecgate_fixtures import unique_collection_name

PID = {doc_id: point_id(doc_id) for doc_id, _, _ in DOCUMENTS}
ALL_IDS = set(PID.values())
OWN = {
    "alice": {PID[d] for d in ids_for("FINANCE", "EMEA")},
    "bob": {PID[d] for d in ids_for("HR", "AMER")},
}
TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
QUESTION = "What changes next quarter?"
LIMIT = 2 * len(DOCUMENTS)


def payload(text: str, meta: dict) -> dict:
    return {"page_content": text, "metadata": dict(meta)}


def code_of(error: BaseException):
    return error.code() if isinstance(error, grpc.RpcError) else None


@pytest.fixture(params=["grpc_api_key", "grpc_token_provider"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def grpc_collection(qdrant_as):
    """The corpus, loaded over gRPC by the ingest principal."""
    name = unique_collection_name("vg-grpc")
    loader = qdrant_as("ingest", "grpc_api_key")
    loader.create_collection(name, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE))
    loader.upsert(name, [models.PointStruct(id=PID[d], vector=embed_text(t), payload=payload(t, m)) for d, t, m in DOCUMENTS], wait=True)
    yield name
    try:
        qdrant_as("admin", "grpc_api_key").delete_collection(name)
    except Exception:  # cleanup only
        pass


def upstream_exchanges(vecgate_qdrant) -> float:
    text = requests.get(f"http://127.0.0.1:{vecgate_qdrant.extra['admin_port']}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if re.match(r"vecgate_upstream_duration_seconds_count[{ ]", line))


def test_the_ingest_principal_loaded_everything_over_grpc(qdrant_direct, grpc_collection):
    points, _ = qdrant_direct.scroll(grpc_collection, limit=100)
    assert {p.id for p in points} == ALL_IDS


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_sync_client_sees_only_own_points(qdrant_as, transport, grpc_collection, who):
    client = qdrant_as(who, transport)
    hits = client.query_points(grpc_collection, query=embed_text(QUESTION), limit=LIMIT, with_payload=True).points
    assert {h.id for h in hits} == OWN[who]
    assert all((h.payload["metadata"]["department"], h.payload["metadata"]["region"]) == TEAM[who] for h in hits)
    points, offset = client.scroll(grpc_collection, limit=LIMIT)
    assert ({p.id for p in points}, offset) == (OWN[who], None)
    assert client.count(grpc_collection, exact=True).count == len(OWN[who])
    got = client.retrieve(grpc_collection, list(ALL_IDS))
    assert {p.id for p in got} == OWN[who]
    # Prefetches fused with RRF, under a filter of the caller's own: both apply.
    fused = client.query_points(
        grpc_collection,
        prefetch=[models.Prefetch(query=embed_text(QUESTION), limit=LIMIT), models.Prefetch(query=embed_text("budget"), limit=LIMIT)],
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        query_filter=models.Filter(must_not=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="audit"))]),
        limit=LIMIT,
    ).points
    assert {h.id for h in fused} == OWN[who] - {PID["fin-emea-audit"]}


def test_async_client_sees_only_own_points(qdrant_as, transport, grpc_collection):
    async def run(who):
        client = qdrant_as(who, transport, asynchronous=True)
        try:
            hits = (await client.query_points(grpc_collection, query=embed_text(QUESTION), limit=LIMIT)).points
            counted = (await client.count(grpc_collection, exact=True)).count
            got = await client.retrieve(grpc_collection, list(ALL_IDS))
            return {h.id for h in hits}, counted, {p.id for p in got}
        finally:
            await client.close()

    for who in ("alice", "bob"):
        assert asyncio.run(run(who)) == (OWN[who], len(OWN[who]), OWN[who])


def test_a_foreign_point_id_as_query_input_looks_missing(qdrant_as, grpc_collection):
    alice = qdrant_as("alice", "grpc_api_key")
    bobs = PID["hr-amer-benefits"]
    with pytest.raises(grpc.RpcError) as hidden:
        alice.query_points(grpc_collection, query=bobs, limit=3)
    with pytest.raises(grpc.RpcError) as absent:
        alice.query_points(grpc_collection, query="00000000-0000-4000-8000-000000000000", limit=3)
    assert hidden.value.code() == absent.value.code() == grpc.StatusCode.NOT_FOUND
    assert hidden.value.details().replace(bobs, "<id>") == absent.value.details().replace(
        "00000000-0000-4000-8000-000000000000", "<id>")
    # Bob may: his own point is a valid input.
    found = qdrant_as("bob", "grpc_token_provider").query_points(grpc_collection, query=bobs, limit=LIMIT).points
    assert {h.id for h in found} == OWN["bob"] - {bobs}


@pytest.mark.parametrize("who, foreign", [("alice", ("HR", "AMER")), ("bob", ("FINANCE", "EMEA"))])
def test_a_write_for_another_department_is_refused_and_nothing_is_written(
    qdrant_as, qdrant_direct, transport, grpc_collection, who, foreign
):
    client = qdrant_as(who, transport)
    planted = "11111111-2222-4333-8444-555555555555"
    text = "planted over gRPC"
    with pytest.raises(grpc.RpcError) as refused:
        client.upsert(grpc_collection, [models.PointStruct(id=planted, vector=embed_text(text),
                                                           payload=payload(text, {"department": foreign[0], "region": foreign[1]}))])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "record writes are not allowed" in refused.value.details()
    assert qdrant_direct.retrieve(grpc_collection, [planted]) == []
    # The same write for one's own team goes through.
    own = payload(text, {"department": TEAM[who][0], "region": TEAM[who][1]})
    client.upsert(grpc_collection, [models.PointStruct(id=planted, vector=embed_text(text), payload=own)], wait=True)
    assert qdrant_direct.retrieve(grpc_collection, [planted], with_payload=True)[0].payload == own


def test_admin_methods_never_reach_the_database_for_a_user(vecgate_qdrant, tokens, grpc_collection):
    import warnings

    from qdrant_client import QdrantClient

    def client(token):
        # No compatibility check: the client would ask the REST root for the server's version
        # from a thread of its own, a health route vecgate forwards, at a time of its choosing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return QdrantClient(url=vecgate_qdrant.url, grpc_port=vecgate_qdrant.extra["grpc_port"], prefer_grpc=True,
                                api_key=token, check_compatibility=False, timeout=30)

    alice = client(tokens["alice"])
    before = upstream_exchanges(vecgate_qdrant)
    for call in (lambda: alice.create_snapshot(grpc_collection), lambda: alice.list_snapshots(grpc_collection),
                 lambda: alice.delete_collection(grpc_collection),
                 lambda: alice.update_collection_aliases([models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="x"))])):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    assert upstream_exchanges(vecgate_qdrant) == before
    # Without a token nothing is read either.
    with pytest.raises(grpc.RpcError) as anonymous:
        client(None).count(grpc_collection)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert upstream_exchanges(vecgate_qdrant) == before


def test_audit_lines_say_grpc(qdrant_as, vecgate_qdrant, grpc_collection):
    import json

    qdrant_as("bob", "grpc_token_provider").count(grpc_collection)
    lines = [json.loads(line) for line in vecgate_qdrant.extra["audit_path"].read_text().splitlines()]
    last = [line for line in lines if line["protocol"] == "grpc" and line["operation"] == "count_points"][-1]
    assert (last["subject"], last["backend"], last["decision"], last["status"], last["grpc_status"]) == ("bob", "qdrant", "filter", 200, 0)
