"""The Qdrant clients of the client matrix (see client_matrix.py): for each, loading documents
straight into Qdrant, the scenario of ordinary calls, and the attempts on the other
department's points. The npm `@qdrant/js-client-rest` client runs in Node
(tests/node/qdrant_scenario.mjs).

Payload layouts (each selects its collection rule in matrix-qdrant.yaml.template by the
collection name's prefix): qdrant-client, the JS client and LangChain store
`{page_content, metadata: {…}}` ("mx-", attr_prefix "metadata."); LlamaIndex stores the node's
metadata at the top of the payload ("li-", attr_prefix ""); Haystack under `meta` ("hs-",
attr_prefix "meta."). Point ids are the corpus ids turned into UUIDs
(examples/langchain-qdrant/point_ids.py).
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from importlib.metadata import version
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from client_matrix import QUESTION, Client, Env, Transcript, ranked
from embeddings import DIMENSIONS, HashingEmbeddings, embed_text
from matrix_chroma_clients import (
    K,
    Awaitable,
    assert_foreign_outcomes,
    foreign_doc,
    haystack_doc,
    haystack_docs,
    llama_node,
    llama_steps,
    new_doc,
    node_version,
    run_node,
)
from point_ids import point_id


class PointIds(dict):
    """Corpus id -> Qdrant point id (a UUID), for any id."""

    def __missing__(self, key: str) -> str:
        return point_id(key)


PID = PointIds()


def qdrant_sync(env: Env) -> QdrantClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Api key is used with an insecure connection"
        # The one line of configuration: the token as the API key (sent as `api-key`).
        return QdrantClient(url=env.url, api_key=env.token, prefer_grpc=False, timeout=30)


def qdrant_async(env: Env) -> AsyncQdrantClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AsyncQdrantClient(url=env.url, api_key=env.token, prefer_grpc=False, timeout=30)


def payload(doc: tuple) -> dict:
    return {"page_content": doc[1], "metadata": dict(doc[2])}


def topic_is(value: str, prefix: str = "metadata.") -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=f"{prefix}topic", match=models.MatchValue(value=value))])


def points_view(points) -> list:
    return [(str(p.id), p.payload) for p in points]


def hits_view(points) -> list:
    return ranked((p.id, p.score) for p in points)


# --------------------------------------------------------------------------------------------
# qdrant-client, sync and async: one scenario, the sync client's calls made awaitable
# --------------------------------------------------------------------------------------------


async def _qdrant_seed(client, env: Env, docs: list) -> None:
    if not await client.collection_exists(env.collection):
        await client.create_collection(
            env.collection, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE))
    await client.upsert(env.collection, points=[
        models.PointStruct(id=PID[d[0]], vector=embed_text(d[1]), payload=payload(d)) for d in docs])


async def _qdrant_steps(client, env: Env) -> Transcript:
    t = Transcript()
    c = env.collection
    own = [PID[i] for i in env.own_ids()]
    other = [PID[i] for i in env.other_ids()]
    q = embed_text(QUESTION)
    t.note("count", (await client.count(c, exact=True)).count)
    t.note("count filter", (await client.count(c, count_filter=topic_is("budget"), exact=True)).count)
    points, _ = await client.scroll(c, limit=100, with_payload=True)
    t.note("scroll", points_view(points))
    page, offset = await client.scroll(c, limit=1)
    page2, offset2 = await client.scroll(c, limit=1, offset=offset)
    t.note("scroll pages", [points_view(page), str(offset), points_view(page2), str(offset2)])
    t.note("scroll filter", points_view((await client.scroll(c, scroll_filter=topic_is("budget"), limit=10))[0]))
    t.note("retrieve", points_view(await client.retrieve(c, ids=[own[0], other[0], str(uuid.UUID(int=7))])))
    t.note("query", hits_view((await client.query_points(c, query=q, limit=K)).points))
    t.note("query filter", hits_view((await client.query_points(c, query=q, query_filter=topic_is("budget"), limit=K)).points))
    t.note("query by point id", hits_view((await client.query_points(c, query=own[0], limit=K)).points))
    t.note("query recommend", hits_view((await client.query_points(
        c, query=models.RecommendQuery(recommend=models.RecommendInput(positive=[own[0]])), limit=K)).points))
    t.note("query mmr", hits_view((await client.query_points(c, query=models.NearestQuery(
        nearest=q, mmr=models.Mmr(diversity=0.5, candidates_limit=K)), limit=2)).points))
    t.note("query prefetch rrf", [str(p.id) for p in (await client.query_points(
        c, prefetch=[models.Prefetch(query=q, limit=K)], query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=K)).points])
    t.note("query batch", [hits_view(r.points) for r in await client.query_batch_points(
        c, requests=[models.QueryRequest(query=q, limit=K), models.QueryRequest(query=q, filter=topic_is("budget"), limit=K)])])
    groups = await client.query_points_groups(c, query=q, group_by="metadata.topic", limit=K, group_size=1)
    t.note("query groups", sorted((str(g.id), [str(h.id) for h in g.hits]) for g in groups.groups))
    new = new_doc(env, "added")
    await client.upsert(c, points=[models.PointStruct(id=PID[new[0]], vector=embed_text(new[1]), payload=payload(new))])
    await client.set_payload(c, payload={"reviewed": True}, points=[own[1]])
    await client.set_payload(c, payload={"note": "nested"}, key="metadata", points=[own[1]])
    await client.overwrite_payload(c, payload=payload((own[0], "overwritten", new_doc(env, "overwritten")[2])), points=[own[0]])
    await client.delete_payload(c, keys=["reviewed"], points=[own[1]])
    await client.update_vectors(c, points=[models.PointVectors(id=own[0], vector=embed_text("changed"))])
    t.note("after writes", points_view(await client.retrieve(c, ids=[*own, PID[new[0]]])))
    await client.set_payload(c, payload={"flag": 1}, points=models.FilterSelector(filter=topic_is("added")))
    await client.delete(c, points_selector=models.PointIdsList(points=[own[1]]))
    await client.delete(c, points_selector=models.FilterSelector(filter=topic_is("overwritten")))
    t.note("after deletes", points_view((await client.scroll(c, limit=100))[0]))
    t.note("count at the end", (await client.count(c, exact=True)).count)
    return t


async def _qdrant_foreign(client, env: Env) -> None:
    c = env.collection
    other = [PID[i] for i in env.other_ids()]
    planted = foreign_doc(env, "qdrant")
    with pytest.raises(Exception):
        await client.upsert(c, points=[models.PointStruct(id=PID[planted[0]], vector=embed_text(planted[1]), payload=payload(planted))])
    with pytest.raises(Exception):  # would overwrite a point the caller may not read
        await client.upsert(c, points=[models.PointStruct(id=other[0], vector=embed_text("x"), payload=payload(new_doc(env, "x")))])
    with pytest.raises(Exception):  # answered as for a point Qdrant does not have (404)
        await client.set_payload(c, payload={"vandalised": True}, points=[other[0]])
    with pytest.raises(Exception):
        await client.update_vectors(c, points=[models.PointVectors(id=other[0], vector=embed_text("x"))])
    await client.delete(c, points_selector=models.PointIdsList(points=other))
    await client.set_payload(c, payload={"vandalised": True}, points=models.FilterSelector(filter=topic_is("benefits")))


def _run_sync(step):
    return lambda env, *a: asyncio.run(step(Awaitable(qdrant_sync(env)), env, *a))


def _run_async(step):
    async def go(env, *a):
        client = qdrant_async(env)
        try:
            return await step(client, env, *a)
        finally:
            await client.close()

    return lambda env, *a: asyncio.run(go(env, *a))


QDRANT_OPERATIONS = ("upsert, set_payload (ids, key, filter), overwrite_payload, delete_payload, "
                     "update_vectors, delete (ids, filter), retrieve, scroll (pages, filter), count "
                     "(filter), query (filter, point id, recommend, MMR, prefetch+RRF, batch, groups)")


def qdrant_client_sync() -> Client:
    return Client("qdrant-client", version("qdrant-client"), QDRANT_OPERATIONS,
                  _run_sync(_qdrant_seed), _run_sync(_qdrant_steps), _run_sync(_qdrant_foreign))


def qdrant_client_async() -> Client:
    return Client("qdrant-client-async", version("qdrant-client"), "the same calls through AsyncQdrantClient",
                  _run_async(_qdrant_seed), _run_async(_qdrant_steps), _run_async(_qdrant_foreign))


# --------------------------------------------------------------------------------------------
# langchain-qdrant
# --------------------------------------------------------------------------------------------


def _lc_store(env: Env):
    from langchain_qdrant import QdrantVectorStore

    return QdrantVectorStore(client=qdrant_sync(env), collection_name=env.collection, embedding=HashingEmbeddings())


def _lc_seed(env: Env, docs: list) -> None:
    from langchain_qdrant import QdrantVectorStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        QdrantVectorStore.from_texts([d[1] for d in docs], HashingEmbeddings(), metadatas=[d[2] for d in docs],
                                     ids=[PID[d[0]] for d in docs], url=env.url, api_key=env.token,
                                     collection_name=env.collection)


def _lc_docs(docs) -> list:
    return [(d.metadata.get("_id"), d.page_content, {k: v for k, v in d.metadata.items() if k != "_collection_name"}) for d in docs]


def _lc_steps(env: Env) -> Transcript:
    t = Transcript()
    store = _lc_store(env)
    own = [PID[i] for i in env.own_ids()]
    t.note("similarity_search", _lc_docs(store.similarity_search(QUESTION, k=K)))
    t.note("similarity_search filter", _lc_docs(store.similarity_search(QUESTION, k=K, filter=topic_is("budget"))))
    t.note("with score", [(d.metadata["_id"], s) for d, s in store.similarity_search_with_score(QUESTION, k=K)])
    t.note("by vector", _lc_docs(store.similarity_search_by_vector(embed_text(QUESTION), k=K)))
    t.note("mmr", _lc_docs(store.max_marginal_relevance_search(QUESTION, k=2, fetch_k=K)))
    t.note("mmr filter", _lc_docs(store.max_marginal_relevance_search(QUESTION, k=2, fetch_k=K, filter=topic_is("budget"))))
    t.note("retriever", _lc_docs(store.as_retriever(search_kwargs={"k": K}).invoke(QUESTION)))
    t.note("mmr retriever", _lc_docs(store.as_retriever(search_type="mmr", search_kwargs={"k": 2}).invoke(QUESTION)))
    t.note("get_by_ids", _lc_docs(store.get_by_ids([own[0], PID[env.other_ids()[0]]])))
    new = new_doc(env, "added")
    store.add_texts([new[1]], metadatas=[new[2]], ids=[PID[new[0]]])
    store.add_texts(["changed"], metadatas=[new_doc(env, "updated")[2]], ids=[own[0]])
    store.delete([own[1]])
    t.note("after writes", _lc_docs(store.similarity_search(QUESTION, k=K)))
    return t


def _lc_foreign(env: Env) -> None:
    store = _lc_store(env)
    planted = foreign_doc(env, "langchain")
    with pytest.raises(Exception):
        store.add_texts([planted[1]], metadatas=[planted[2]], ids=[PID[planted[0]]])
    other = [PID[i] for i in env.other_ids()]
    with pytest.raises(Exception):
        store.add_texts(["taken over"], metadatas=[new_doc(env, "x")[2]], ids=[other[0]])
    store.delete(other)


def langchain_qdrant_client() -> Client:
    return Client("langchain-qdrant", version("langchain-qdrant"),
                  "from_texts, add_texts (new and existing ids), delete, similarity_search (with and "
                  "without filter, with score, by vector), MMR (with filter), retriever (similarity, "
                  "MMR), get_by_ids", _lc_seed, _lc_steps, _lc_foreign)


# --------------------------------------------------------------------------------------------
# llama-index-vector-stores-qdrant
# --------------------------------------------------------------------------------------------


def _llama_store(env: Env):
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The token goes in as the clients' API key.
        return QdrantVectorStore(collection_name=env.collection, client=qdrant_sync(env), aclient=qdrant_async(env))


def _llama_seed(env: Env, docs: list) -> None:
    _llama_store(env).add([llama_node((PID[d[0]], d[1], d[2])) for d in docs])


def _llama_foreign(env: Env) -> None:
    store = _llama_store(env)
    planted = foreign_doc(env, "llama")
    with pytest.raises(Exception):
        store.add([llama_node((PID[planted[0]], planted[1], planted[2]))])
    store.delete_nodes([PID[i] for i in env.other_ids()])


def llama_qdrant_client() -> Client:
    return Client("llama-index-qdrant", version("llama-index-vector-stores-qdrant"),
                  "add, delete (ref_doc_id), delete_nodes, get_nodes (ids, filters), query (with and "
                  "without filters), MMR, VectorStoreIndex retriever",
                  _llama_seed, lambda env: llama_steps(_llama_store(env), env, PID), _llama_foreign, prefix="li")


# --------------------------------------------------------------------------------------------
# qdrant-haystack (sync and async: both carry the token)
# --------------------------------------------------------------------------------------------


def _hs_store(env: Env):
    from haystack.utils import Secret
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The one line of configuration: the token as the API key.
        return QdrantDocumentStore(url=env.url, api_key=Secret.from_token(env.token), index=env.collection,
                                   embedding_dim=DIMENSIONS, similarity="cosine", wait_result_from_api=True)


def _hs_steps(env: Env) -> Transcript:
    from haystack.document_stores.types import DuplicatePolicy
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

    from matrix_chroma_clients import haystack_steps

    store = _hs_store(env)
    t = haystack_steps(store, QdrantEmbeddingRetriever, env)
    own = env.own_ids()

    async def asynchronous():
        t.note("async count_documents", await store.count_documents_async())
        t.note("async filter_documents", haystack_docs(await store.filter_documents_async()))
        new = haystack_doc(new_doc(env, "async"))
        t.note("async write", await store.write_documents_async([new], policy=DuplicatePolicy.OVERWRITE))
        await store.delete_documents_async([own[0]])
        retriever = QdrantEmbeddingRetriever(document_store=store, top_k=K)
        t.note("async retriever", ranked((d.id, d.score) for d in (await retriever.run_async(query_embedding=embed_text(QUESTION)))["documents"]))
        t.note("async count at the end", await store.count_documents_async())

    asyncio.run(asynchronous())
    return t


def _hs_foreign(env: Env) -> None:
    from matrix_chroma_clients import haystack_foreign

    haystack_foreign(_hs_store(env), env)


def haystack_qdrant_client() -> Client:
    return Client("qdrant-haystack", version("qdrant-haystack"),
                  "write_documents (overwrite, skip), filter_documents (all, filters, ids), "
                  "count_documents, delete_documents, QdrantEmbeddingRetriever (with and without "
                  "filters); the async methods (count, filter, write, delete, retriever)",
                  lambda env, docs: _hs_store(env).write_documents([haystack_doc(d) for d in docs]),
                  _hs_steps, _hs_foreign, prefix="hs")


# --------------------------------------------------------------------------------------------
# @qdrant/js-client-rest on Node
# --------------------------------------------------------------------------------------------


def qdrant_js_client() -> Client:
    def ids_env(env: Env) -> Env:
        env.extra = {"ownPoints": [PID[i] for i in env.own_ids()], "otherPoints": [PID[i] for i in env.other_ids()],
                     "newPoint": PID[new_doc(env, "added-js")[0]], "plantedPoint": PID["planted-js"]}
        return env

    def scenario(env: Env) -> Transcript:
        t = Transcript()
        for step, value in run_node("qdrant_scenario.mjs", "scenario", ids_env(env)):
            t.note(step, value)
        return t

    def seed(env: Env, docs: list) -> None:
        env = ids_env(env)
        env.extra["points"] = [PID[d[0]] for d in docs]
        run_node("qdrant_scenario.mjs", "seed", env, docs)

    return Client("qdrant-js", node_version("@qdrant/js-client-rest"),
                  "upsert, setPayload, overwritePayload, deletePayload, updateVectors, delete (ids, "
                  "filter), retrieve, scroll (pages, filter), count, query (filter, point id, MMR) — on Node",
                  seed, scenario,
                  lambda env: assert_foreign_outcomes(run_node("qdrant_scenario.mjs", "foreign", ids_env(env))))


def qdrant_clients() -> list[Client]:
    return [qdrant_client_sync(), qdrant_client_async(), langchain_qdrant_client(), llama_qdrant_client(),
            haystack_qdrant_client(), qdrant_js_client()]


def stored_points(url: str, api_key: str, collection: str, ids: list[str]) -> list:
    """What Qdrant really holds for `ids` (payload and vector), read without vecgate."""
    env = Env(url, api_key, collection, "alice", False)
    got = qdrant_sync(env).retrieve(collection, ids=ids, with_payload=True, with_vectors=True)
    return sorted((str(p.id), repr(p.payload), repr(p.vector)) for p in got)

