"""The Chroma clients of the client matrix (see client_matrix.py): for each, loading documents
straight into Chroma, the scenario of ordinary calls, and the attempts on the other
department's records. The npm `chromadb` client runs in Node (tests/node/chroma_scenario.mjs).

Every client embeds with the demo's deterministic hashing embedding
(examples/langchain-chroma/embeddings.py); nothing downloads a model.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings

from client_matrix import QUESTION, Client, Env, Transcript, ranked
from embeddings import DIMENSIONS, HashingEmbeddings, embed_text

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
K = 8  # more than anyone may see

# The clients' own telemetry, off before any of them is imported (Haystack posts to PostHog;
# Chroma's client to its own endpoint). Nothing may leave the machine.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def bearer(env: Env) -> dict:
    return {"Authorization": f"Bearer {env.token}"} if env.token else {}


def new_doc(env: Env, suffix: str) -> tuple[str, str, dict]:
    department, region = env.team
    text = f"{department} {region}: a note written in the matrix ({suffix})."
    return (f"{department.lower()}-{region.lower()}-{suffix}", text,
            {"department": department, "region": region, "topic": suffix})


def foreign_doc(env: Env, suffix: str) -> tuple[str, str, dict]:
    department, region = env.other_team
    text = f"{department} {region}: planted by someone else ({suffix})."
    return (f"planted-{suffix}", text, {"department": department, "region": region, "topic": suffix})


def get_view(result: Any) -> dict:
    """ids, documents and metadatas of a chromadb GetResult, in order."""
    return {"ids": list(result["ids"]), "documents": list(result["documents"] or []),
            "metadatas": [dict(m) for m in result["metadatas"] or []]}


def query_view(result: Any) -> dict:
    return {"ids": [list(x) for x in result["ids"]],
            "distances": [list(x) for x in result["distances"] or []],
            "documents": [list(x) for x in result["documents"] or []]}


# --------------------------------------------------------------------------------------------
# chromadb, sync and async: one scenario, the sync client's calls made awaitable
# --------------------------------------------------------------------------------------------


class Awaitable:
    """Wraps a sync chromadb object so its methods can be awaited like the async client's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args, **kwargs):
            result = method(*args, **kwargs)
            return Awaitable(result) if name.endswith("collection") else result

        return call


def chromadb_sync(env: Env) -> chromadb.api.ClientAPI:
    # The one line of configuration: the token as a header.
    return chromadb.HttpClient(host=env.host, port=env.port, headers=bearer(env))


async def chromadb_async(env: Env):
    return await chromadb.AsyncHttpClient(host=env.host, port=env.port, headers=bearer(env))


async def _chromadb_seed(client, env: Env, docs: list) -> None:
    col = await client.get_or_create_collection(env.collection, embedding_function=None)
    await col.add(ids=[d[0] for d in docs], documents=[d[1] for d in docs],
                  metadatas=[d[2] for d in docs], embeddings=[embed_text(d[1]) for d in docs])


async def _chromadb_steps(client, env: Env) -> Transcript:
    t = Transcript()
    own = env.own_ids()
    col = await client.get_or_create_collection(env.collection, embedding_function=None)
    q = [embed_text(QUESTION)]
    t.note("count", await col.count())
    t.note("get", get_view(await col.get()))
    t.note("get by ids", get_view(await col.get(ids=[own[0], env.other_ids()[0], "no-such-id"])))
    t.note("get page", get_view(await col.get(limit=1, offset=1)))
    t.note("get where", get_view(await col.get(where={"topic": "budget"})))
    t.note("get where_document", get_view(await col.get(where_document={"$contains": "quarter"})))
    t.note("peek", get_view(await col.peek(limit=1)))
    t.note("query", query_view(await col.query(query_embeddings=q, n_results=K)))
    t.note("query where", query_view(await col.query(
        query_embeddings=q, n_results=K, where={"$or": [{"topic": "budget"}, {"topic": "reviews"}]})))
    t.note("query ids", query_view(await col.query(query_embeddings=q, n_results=K, ids=own)))
    t.note("query include", (await col.query(query_embeddings=q, n_results=1,
                                              include=["metadatas"]))["metadatas"])
    doc_id, text, meta = new_doc(env, "added")
    await col.add(ids=[doc_id], documents=[text], metadatas=[meta], embeddings=[embed_text(text)])
    t.note("after add", get_view(await col.get(ids=[doc_id])))
    await col.upsert(ids=[own[0]], documents=["changed by upsert"],
                     metadatas=[{**new_doc(env, "upserted")[2]}], embeddings=[embed_text("changed")])
    await col.update(ids=[own[1]], metadatas=[{"topic": "updated"}])
    t.note("after upsert and update", get_view(await col.get(ids=own)))
    await col.delete(ids=[own[1]])
    await col.delete(where={"topic": "upserted"})
    t.note("after deletes", get_view(await col.get()))
    t.note("count at the end", await col.count())
    return t


async def _chromadb_foreign(client, env: Env) -> None:
    col = await client.get_collection(env.collection, embedding_function=None)
    doc_id, text, meta = foreign_doc(env, "chromadb")
    with pytest.raises(Exception):
        await col.add(ids=[doc_id], documents=[text], metadatas=[meta], embeddings=[embed_text(text)])
    other = env.other_ids()
    with pytest.raises(Exception):  # would overwrite a record the caller may not read
        await col.upsert(ids=[other[0]], documents=["taken over"], metadatas=[new_doc(env, "x")[2]],
                         embeddings=[embed_text("taken over")])
    # Like an update or delete of ids Chroma does not have: accepted, nothing changes.
    await col.update(ids=[other[0]], metadatas=[{"topic": "vandalised"}])
    await col.delete(ids=other)


def chromadb_sync_client() -> Client:
    def run(step):
        return lambda env, *a: asyncio.run(step(Awaitable(chromadb_sync(env)), env, *a))

    return Client("chromadb", chromadb.__version__,
                  "add, upsert, update, delete by ids and where, get (ids, where, where_document, "
                  "limit/offset), peek, query (where, ids, include), count",
                  run(_chromadb_seed), run(_chromadb_steps), run(_chromadb_foreign))


def chromadb_async_client() -> Client:
    def run(step):
        async def go(env, *a):
            return await step(await chromadb_async(env), env, *a)

        return lambda env, *a: asyncio.run(go(env, *a))

    return Client("chromadb-async", chromadb.__version__,
                  "the same calls through AsyncHttpClient",
                  run(_chromadb_seed), run(_chromadb_steps), run(_chromadb_foreign))


# --------------------------------------------------------------------------------------------
# langchain-chroma
# --------------------------------------------------------------------------------------------


def _langchain_store(env: Env):
    from langchain_chroma import Chroma

    return Chroma(collection_name=env.collection, embedding_function=HashingEmbeddings(),
                  client=chromadb_sync(env))


def _langchain_seed(env: Env, docs: list) -> None:
    _langchain_store(env).add_texts([d[1] for d in docs], metadatas=[d[2] for d in docs],
                                    ids=[d[0] for d in docs])


def _docs(docs) -> list:
    return [(d.id, d.page_content, dict(d.metadata)) for d in docs]


def _langchain_steps(env: Env) -> Transcript:
    from langchain_core.documents import Document

    t = Transcript()
    store = _langchain_store(env)
    own = env.own_ids()
    t.note("similarity_search", _docs(store.similarity_search(QUESTION, k=K)))
    t.note("similarity_search filter", _docs(store.similarity_search(QUESTION, k=K, filter={"topic": "budget"})))
    t.note("with score", [(d.id, s) for d, s in store.similarity_search_with_score(QUESTION, k=K)])
    t.note("with relevance scores", [(d.id, s) for d, s in store.similarity_search_with_relevance_scores(QUESTION, k=K)])
    t.note("by vector", _docs(store.similarity_search_by_vector(embed_text(QUESTION), k=K)))
    t.note("mmr", _docs(store.max_marginal_relevance_search(QUESTION, k=2, fetch_k=K)))
    t.note("mmr filter", _docs(store.max_marginal_relevance_search(QUESTION, k=2, fetch_k=K, filter={"region": env.team[1]})))
    t.note("retriever", _docs(store.as_retriever(search_kwargs={"k": K}).invoke(QUESTION)))
    t.note("mmr retriever", _docs(store.as_retriever(search_type="mmr", search_kwargs={"k": 2}).invoke(QUESTION)))
    t.note("get_by_ids", _docs(store.get_by_ids([own[0], env.other_ids()[0]])))
    t.note("get page", get_view(store.get(limit=1, offset=1)))
    t.note("get where", get_view(store.get(where={"topic": "budget"})))
    doc_id, text, meta = new_doc(env, "added")
    store.add_texts([text], metadatas=[meta], ids=[doc_id])
    store.add_documents([Document(page_content="second", metadata=new_doc(env, "second")[2], id=doc_id + "-2")])
    store.update_document(own[0], Document(page_content="changed", metadata=new_doc(env, "updated")[2]))
    t.note("after writes", get_view(store.get()))
    store.delete([own[1], doc_id + "-2"])
    t.note("after delete", get_view(store.get()))
    return t


def _langchain_foreign(env: Env) -> None:
    from langchain_core.documents import Document

    store = _langchain_store(env)
    doc_id, text, meta = foreign_doc(env, "langchain")
    with pytest.raises(Exception):
        store.add_texts([text], metadatas=[meta], ids=[doc_id])
    other = env.other_ids()
    store.update_document(other[0], Document(page_content="vandalised", metadata=new_doc(env, "x")[2]))
    store.delete(other)


def langchain_chroma_client() -> Client:
    from importlib.metadata import version

    return Client("langchain-chroma", version("langchain-chroma"),
                  "add_texts, add_documents, update_document, delete, similarity_search (with and "
                  "without filter, with score, relevance scores, by vector), MMR (with filter), "
                  "retriever (similarity, MMR), get_by_ids, get (limit/offset, where)",
                  _langchain_seed, _langchain_steps, _langchain_foreign)


# --------------------------------------------------------------------------------------------
# llama-index-vector-stores-chroma
# --------------------------------------------------------------------------------------------


def _llama_embedding():
    from llama_index.core.embeddings import BaseEmbedding

    class HashingLlamaEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embed_text(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return embed_text(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return embed_text(text)

    return HashingLlamaEmbedding(model_name="hashing", embed_batch_size=8)


def llama_node(doc: tuple, source: str | None = None):
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    doc_id, text, meta = doc
    node = TextNode(id_=doc_id, text=text, metadata=dict(meta), embedding=embed_text(text))
    if source:
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=source)
    return node


def llama_nodes(nodes) -> list:
    return [(n.node_id, n.get_content(), {k: v for k, v in n.metadata.items()}) for n in nodes]


def llama_result(result) -> list:
    return ranked(zip([n.node_id for n in result.nodes or []], result.similarities or []))


def llama_steps(store, env: Env, ids: dict) -> Transcript:
    """The LlamaIndex vector-store scenario, shared by the Chroma and Qdrant stores; `ids` maps
    corpus ids to the store's ids."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.vector_stores.types import (
        MetadataFilter, MetadataFilters, VectorStoreQuery, VectorStoreQueryMode,
    )

    t = Transcript()
    own = [ids[i] for i in env.own_ids()]
    q = embed_text(QUESTION)
    topic = MetadataFilters(filters=[MetadataFilter(key="topic", value="budget")])
    t.note("query", llama_result(store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=K))))
    t.note("query filters", llama_result(store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=K, filters=topic))))
    t.note("query mmr", llama_result(store.query(VectorStoreQuery(
        query_embedding=q, similarity_top_k=2, mode=VectorStoreQueryMode.MMR), mmr_threshold=0.5)))
    t.note("get_nodes ids", llama_nodes(store.get_nodes(node_ids=[own[0], ids[env.other_ids()[0]]])))
    t.note("get_nodes filters", llama_nodes(store.get_nodes(None, filters=topic)))
    index = VectorStoreIndex.from_vector_store(store, embed_model=_llama_embedding())
    t.note("retriever", [(n.node.node_id, n.score) for n in index.as_retriever(similarity_top_k=K).retrieve(QUESTION)])
    new = new_doc(env, "added")
    added = store.add([llama_node((ids[new[0]], new[1], new[2]), source="source-a")])
    t.note("add", added)
    t.note("after add", sorted(n.node_id for n in store.get_nodes(None)))
    store.delete_nodes([own[1]])
    store.delete("source-a")  # by ref_doc_id
    t.note("after deletes", llama_nodes(store.get_nodes(None)))
    return t


def _llama_chroma_store(env: Env):
    from llama_index.vector_stores.chroma import ChromaVectorStore

    # The one line of configuration: the token as a header.
    return ChromaVectorStore(collection_name=env.collection, host=env.host, port=env.port,
                             headers=bearer(env))


def _llama_chroma_foreign(env: Env) -> None:
    store = _llama_chroma_store(env)
    with pytest.raises(Exception):
        store.add([llama_node(foreign_doc(env, "llama"))])
    store.delete_nodes(env.other_ids())
    store.delete("None")  # the ref_doc_id of nodes loaded without a source


def llama_chroma_client() -> Client:
    from importlib.metadata import version

    return Client("llama-index-chroma", version("llama-index-vector-stores-chroma"),
                  "add, delete (ref_doc_id), delete_nodes, get_nodes (ids, filters), query (with and "
                  "without filters), MMR, VectorStoreIndex retriever",
                  lambda env, docs: _llama_chroma_store(env).add([llama_node(d) for d in docs]),
                  lambda env: llama_steps(_llama_chroma_store(env), env, IdentityMap()),
                  _llama_chroma_foreign)


class IdentityMap(dict):
    def __missing__(self, key):
        return key


# --------------------------------------------------------------------------------------------
# chroma-haystack
# --------------------------------------------------------------------------------------------


def haystack_chroma_settings(env: Env) -> dict:
    """The one line of configuration: chromadb's token provider through `client_settings`."""
    if not env.token:
        return {}
    return {"chroma_client_auth_provider": "chromadb.auth.token_authn.TokenAuthClientProvider",
            "chroma_client_auth_credentials": env.token,
            "chroma_auth_token_transport_header": "X-Chroma-Token"}


def _haystack_chroma_store(env: Env):
    from haystack_integrations.document_stores.chroma import ChromaDocumentStore

    return ChromaDocumentStore(collection_name=env.collection, host=env.host, port=env.port,
                               distance_function="cosine",
                               client_settings=haystack_chroma_settings(env) or None)


def haystack_doc(doc: tuple):
    from haystack import Document

    doc_id, text, meta = doc
    return Document(id=doc_id, content=text, meta=dict(meta), embedding=embed_text(text))


def haystack_docs(docs) -> list:
    return sorted((d.id, d.content, dict(d.meta)) for d in docs)


def haystack_hits(docs) -> list:
    return ranked((d.id, d.score) for d in docs)


def haystack_steps(store, retriever_cls, env: Env) -> Transcript:
    """The Haystack document-store scenario, shared by the Chroma and Qdrant stores."""
    from haystack.document_stores.types import DuplicatePolicy

    t = Transcript()
    own = env.own_ids()
    q = embed_text(QUESTION)
    topic = {"field": "meta.topic", "operator": "==", "value": "budget"}
    t.note("count_documents", store.count_documents())
    t.note("filter_documents", haystack_docs(store.filter_documents()))
    t.note("filter_documents filters", haystack_docs(store.filter_documents(filters=topic)))
    for doc_id in (own[0], env.other_ids()[0]):
        t.note("filter_documents id", haystack_docs(store.filter_documents(
            filters={"field": "id", "operator": "==", "value": doc_id})))
    retriever = retriever_cls(document_store=store, top_k=K)
    t.note("retriever", haystack_hits(retriever.run(query_embedding=q)["documents"]))
    t.note("retriever filters", haystack_hits(retriever.run(query_embedding=q, filters=topic)["documents"]))
    new = haystack_doc(new_doc(env, "added"))
    t.note("write new", store.write_documents([new], policy=DuplicatePolicy.OVERWRITE))
    t.note("write existing, skip", store.write_documents([haystack_doc(new_doc(env, "added"))], policy=DuplicatePolicy.SKIP))
    changed = haystack_doc((own[0], "changed by overwrite", new_doc(env, "overwritten")[2]))
    t.note("overwrite own", store.write_documents([changed], policy=DuplicatePolicy.OVERWRITE))
    store.delete_documents([own[1]])
    t.note("after writes", haystack_docs(store.filter_documents()))
    t.note("count at the end", store.count_documents())
    return t


def _haystack_chroma_steps(env: Env) -> Transcript:
    from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever

    return haystack_steps(_haystack_chroma_store(env), ChromaEmbeddingRetriever, env)


def haystack_foreign(store, env: Env) -> None:
    from haystack.document_stores.types import DuplicatePolicy

    with pytest.raises(Exception):
        store.write_documents([haystack_doc(foreign_doc(env, "haystack"))], policy=DuplicatePolicy.OVERWRITE)
    store.delete_documents(env.other_ids())


def haystack_chroma_client() -> Client:
    from importlib.metadata import version

    return Client("chroma-haystack", version("chroma-haystack"),
                  "write_documents (overwrite, skip), filter_documents (all, filters, ids), "
                  "count_documents, delete_documents, ChromaEmbeddingRetriever (with and without "
                  "filters); async methods: cannot send a token (test below)",
                  lambda env, docs: _haystack_chroma_store(env).write_documents([haystack_doc(d) for d in docs]),
                  _haystack_chroma_steps,
                  lambda env: haystack_foreign(_haystack_chroma_store(env), env))


# --------------------------------------------------------------------------------------------
# npm chromadb on Node
# --------------------------------------------------------------------------------------------


def node_binary() -> str:
    node = os.environ.get("VECGATE_NODE", "node")
    modules = NODE_DIR / "node_modules"
    if not modules.is_dir():
        raise RuntimeError(
            f"{modules} does not exist: run ./scripts/test.sh, which installs the JavaScript "
            "clients (scripts/node-clients.sh)"
        )
    return node


def run_node(script: str, mode: str, env: Env, docs: list | None = None) -> Any:
    payload = {"mode": mode, "url": env.url, "token": env.token, "collection": env.collection,
               "who": env.who, "team": list(env.team), "otherTeam": list(env.other_team),
               "ownIds": env.own_ids(), "otherIds": env.other_ids(), "question": QUESTION,
               "k": K, "dimensions": DIMENSIONS, "docs": docs or [], **env.extra}
    if docs is not None:
        payload["embeddings"] = [embed_text(d[1]) for d in docs]
    extra_texts = ["changed", QUESTION]
    payload["textEmbeddings"] = {t: embed_text(t) for t in extra_texts}
    result = subprocess.run([node_binary(), str(NODE_DIR / script)], input=json.dumps(payload),
                            capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    if result.returncode != 0:
        raise AssertionError(f"node {script} {mode} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def node_version(package: str) -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def chromadb_js_client() -> Client:
    def scenario(env: Env) -> Transcript:
        t = Transcript()
        for step, value in run_node("chroma_scenario.mjs", "scenario", env):
            t.note(step, value)
        return t

    return Client("chromadb-js", node_version("chromadb"),
                  "add, upsert, update, delete (ids, where), get (ids, where, limit/offset), peek, "
                  "query (where, ids), count — on Node",
                  lambda env, docs: run_node("chroma_scenario.mjs", "seed", env, docs),
                  scenario,
                  lambda env: assert_foreign_outcomes(run_node("chroma_scenario.mjs", "foreign", env)))


def assert_foreign_outcomes(got: dict) -> None:
    """The Node clients' attempts on the other department's records: writes tagged for it and
    takeovers refused; updates and deletes of its records accepted (and changing nothing)."""
    expected = {"add": "error", "upsert": "error", "update": "ok", "delete": "ok",
                "set_payload": "error", "update_vectors": "error"}
    for name, outcome in got.items():
        assert outcome["outcome"] == expected[name], f"{name}: {outcome}"


def chroma_clients() -> list[Client]:
    return [chromadb_sync_client(), chromadb_async_client(), langchain_chroma_client(),
            llama_chroma_client(), haystack_chroma_client(), chromadb_js_client()]
