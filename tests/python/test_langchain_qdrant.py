"""langchain-qdrant's QdrantVectorStore used exactly as its docs show, with the client pointed
at vecgate. The application code is the same for every caller; only the credential differs.
Every test that uses `transport` runs with qdrant-client over REST (`api_key=`,
`auth_token_provider=`) and with `prefer_grpc=True` through vecgate's gRPC listener.

Dense retrieval uses the demo's deterministic embedding (examples/langchain-chroma/
embeddings.py). HYBRID and SPARSE retrieval need a sparse embedding; FastEmbedSparse would
download a model, so `HashingSparseEmbeddings` below (hashed term counts, no model, no
network) stands in for it. What is really stored is checked straight against Qdrant with
Qdrant's own API key (`qdrant_direct`), bypassing vecgate.
"""

from __future__ import annotations

import hashlib
import re
import uuid
import warnings
from collections import Counter

import grpc
import pytest
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from corpus import DOCUMENTS, ids_for
from embeddings import HashingEmbeddings
from point_ids import point_id
from vecgate_fixtures import unique_collection_name

PID = {doc_id: point_id(doc_id) for doc_id, _, _ in DOCUMENTS}
ALL_IDS = set(PID.values())
TEXT = {PID[doc_id]: text for doc_id, text, _ in DOCUMENTS}
OWN = {
    "alice": {PID[d] for d in ids_for("FINANCE", "EMEA")},
    "bob": {PID[d] for d in ids_for("HR", "AMER")},
}
TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
QUESTION = "What changes next quarter?"
K = len(DOCUMENTS)  # ask for more than anyone may see


class HashingSparseEmbeddings(SparseEmbeddings):
    """A deterministic sparse embedding: each lower-cased word is hashed (BLAKE2b) to an index
    below 2**20 and weighted by how often it occurs. Texts sharing words score against each
    other under Qdrant's sparse dot product. Same text, same vector, in every process."""

    _WORD = re.compile(r"[a-z0-9]+")

    def _embed(self, text: str) -> SparseVector:
        counts: Counter[int] = Counter()
        for word in self._WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            counts[int.from_bytes(digest, "big") % (1 << 20)] += 1
        indices = sorted(counts)
        return SparseVector(indices=indices, values=[float(counts[i]) for i in indices])

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> SparseVector:
        return self._embed(text)


# A refusal as qdrant-client raises it: over REST an UnexpectedResponse, over gRPC an RpcError.
REFUSED = (UnexpectedResponse, grpc.RpcError)


def forbidden(error: BaseException) -> bool:
    """403 over REST, PERMISSION_DENIED over gRPC."""
    if isinstance(error, grpc.RpcError):
        return error.code() == grpc.StatusCode.PERMISSION_DENIED
    return getattr(error, "status_code", None) == 403


def doc_id(doc) -> str:
    return doc.metadata["_id"]


def team_of(doc) -> tuple[str, str]:
    return (doc.metadata["department"], doc.metadata["region"])


def flt(key: str, value: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])


def stored_ids(direct, name) -> set[str]:
    points, _ = direct.scroll(name, limit=1000, with_payload=False)
    return {p.id for p in points}


def _load(url: str, token: str, mode: RetrievalMode) -> str:
    """A fresh collection created and loaded through vecgate with from_texts by the ingest
    principal (the loader's code is the demo's load_corpus.py, plus the retrieval mode)."""
    name = unique_collection_name(f"vg-lcq-{mode.value}")
    kwargs = {}
    if mode != RetrievalMode.DENSE:
        kwargs["sparse_embedding"] = HashingSparseEmbeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api key over plain http: loopback only
        QdrantVectorStore.from_texts(
            [text for _, text, _ in DOCUMENTS],
            HashingEmbeddings() if mode != RetrievalMode.SPARSE else None,
            metadatas=[dict(meta) for _, _, meta in DOCUMENTS],
            ids=[PID[d] for d, _, _ in DOCUMENTS],
            url=url,
            api_key=token,
            collection_name=name,
            retrieval_mode=mode,
            **kwargs,
        )
    return name


@pytest.fixture
def collection_name(vecgate_qdrant, tokens, qdrant_as):
    name = _load(vecgate_qdrant.url, tokens["ingest"], RetrievalMode.DENSE)
    yield name
    try:
        qdrant_as("admin").delete_collection(name)
    except Exception:  # cleanup only
        pass


@pytest.fixture
def hybrid_collection_name(vecgate_qdrant, tokens, qdrant_as):
    """The corpus with a dense and a sparse vector per point (LangChain's HYBRID layout)."""
    name = _load(vecgate_qdrant.url, tokens["ingest"], RetrievalMode.HYBRID)
    yield name
    try:
        qdrant_as("admin").delete_collection(name)
    except Exception:  # cleanup only
        pass


@pytest.fixture(params=["api_key", "token_provider", "grpc_token_provider"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def store(qdrant_as, transport, collection_name):
    """store("alice") -> the app's vector store, connected as that person."""

    def _store(who):
        return QdrantVectorStore(
            client=qdrant_as(who, transport),
            collection_name=collection_name,
            embedding=HashingEmbeddings(),
        )

    return _store


@pytest.fixture
def hybrid_store(qdrant_as, transport, hybrid_collection_name):
    def _store(who, mode=RetrievalMode.HYBRID):
        return QdrantVectorStore(
            client=qdrant_as(who, transport),
            collection_name=hybrid_collection_name,
            embedding=HashingEmbeddings() if mode != RetrievalMode.SPARSE else None,
            retrieval_mode=mode,
            sparse_embedding=HashingSparseEmbeddings(),
        )

    return _store


# --------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------


def test_loader_stored_everything(qdrant_direct, collection_name):
    assert stored_ids(qdrant_direct, collection_name) == ALL_IDS


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_similarity_search_sees_only_own_documents(store, who):
    docs = store(who).similarity_search(QUESTION, k=K)
    assert {doc_id(d) for d in docs} == OWN[who]
    assert len(docs) == len(OWN[who])
    assert all(team_of(d) == TEAM[who] for d in docs)
    assert all(d.page_content == TEXT[doc_id(d)] for d in docs)


def test_alice_and_bob_get_different_answers_to_the_same_question(store):
    alice = [d.page_content for d in store("alice").similarity_search(QUESTION, k=2)]
    bob = [d.page_content for d in store("bob").similarity_search(QUESTION, k=2)]
    assert alice and bob
    assert not set(alice) & set(bob)


def test_retrieval_still_ranks_by_meaning(store):
    top = store("alice").similarity_search("budget travel spending", k=1)
    assert [doc_id(d) for d in top] == [PID["fin-emea-budget"]]
    top = store("bob").similarity_search("health insurance enrolment", k=1)
    assert [doc_id(d) for d in top] == [PID["hr-amer-benefits"]]


def test_user_filter_is_combined_with_the_policy(store):
    alice = store("alice")
    found = alice.similarity_search(QUESTION, k=K, filter=flt("metadata.topic", "audit"))
    assert [doc_id(d) for d in found] == [PID["fin-emea-audit"]]
    # A filter naming someone else's department finds nothing instead of their documents.
    assert alice.similarity_search(QUESTION, k=K, filter=flt("metadata.department", "HR")) == []
    assert alice.similarity_search(QUESTION, k=K, filter=flt("metadata.region", "AMER")) == []


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_similarity_search_with_score(store, who):
    scored = store(who).similarity_search_with_score(QUESTION, k=K)
    assert {doc_id(d) for d, _ in scored} == OWN[who]
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)  # cosine similarity, best first


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_max_marginal_relevance_search(store, who):
    docs = store(who).max_marginal_relevance_search(QUESTION, k=K, fetch_k=K)
    assert {doc_id(d) for d in docs} == OWN[who]
    assert all(team_of(d) == TEAM[who] for d in docs)


def test_max_marginal_relevance_search_with_filter(store):
    docs = store("bob").max_marginal_relevance_search(
        QUESTION, k=K, fetch_k=K, filter=flt("metadata.topic", "reviews")
    )
    assert [doc_id(d) for d in docs] == [PID["hr-amer-reviews"]]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_retriever_invoke(store, who):
    docs = store(who).as_retriever(search_kwargs={"k": K}).invoke(QUESTION)
    assert {doc_id(d) for d in docs} == OWN[who]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_hybrid_retrieval_sees_only_own_documents(hybrid_store, who):
    docs = hybrid_store(who).similarity_search(QUESTION, k=K)
    assert {doc_id(d) for d in docs} == OWN[who]
    assert len(docs) == len(OWN[who])


def test_hybrid_retrieval_with_filter_and_ranking(hybrid_store):
    bob = hybrid_store("bob")
    top = bob.similarity_search("health insurance enrolment", k=1)
    assert [doc_id(d) for d in top] == [PID["hr-amer-benefits"]]
    assert bob.similarity_search(QUESTION, k=K, filter=flt("metadata.department", "FINANCE")) == []
    found = bob.similarity_search(QUESTION, k=K, filter=flt("metadata.topic", "reviews"))
    assert [doc_id(d) for d in found] == [PID["hr-amer-reviews"]]


def test_sparse_retrieval_sees_only_own_documents(hybrid_store):
    docs = hybrid_store("alice", RetrievalMode.SPARSE).similarity_search(
        "budget audit invoices quarter", k=K
    )
    # Both of alice's notes share words with the query; so do notes of every other team.
    assert {doc_id(d) for d in docs} == OWN["alice"]
    assert all(team_of(d) == TEAM["alice"] for d in docs)


def test_get_by_ids_leaves_out_foreign_ids(store):
    got = store("alice").get_by_ids(
        [PID["fin-emea-budget"], PID["hr-amer-benefits"], PID["fin-amer-tax"]]
    )
    assert [doc_id(d) for d in got] == [PID["fin-emea-budget"]]
    assert store("alice").get_by_ids([PID["hr-amer-benefits"], PID["hr-emea-leave"]]) == []
    # The owner does get them.
    got = store("bob").get_by_ids([PID["hr-amer-benefits"], PID["fin-emea-budget"]])
    assert [doc_id(d) for d in got] == [PID["hr-amer-benefits"]]


@pytest.mark.parametrize("prefer_grpc", [False, True])
def test_store_from_existing_collection_with_url_and_api_key(vecgate_qdrant, tokens, collection_name, prefer_grpc):
    # LangChain's other documented way in: no client object, just url and api_key (and, for
    # gRPC, prefer_grpc with vecgate's gRPC port).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bob = QdrantVectorStore.from_existing_collection(
            collection_name=collection_name,
            embedding=HashingEmbeddings(),
            url=vecgate_qdrant.url,
            api_key=tokens["bob"],
            prefer_grpc=prefer_grpc,
            grpc_port=vecgate_qdrant.extra["grpc_port"],
        )
    assert {doc_id(d) for d in bob.similarity_search(QUESTION, k=K)} == OWN["bob"]


# --------------------------------------------------------------------------------------
# Writes and deletes
# --------------------------------------------------------------------------------------


def test_delete_of_foreign_ids_deletes_nothing(store, qdrant_direct, collection_name):
    foreign = [PID["hr-amer-benefits"], PID["hr-amer-reviews"]]
    try:
        store("alice").delete(ids=foreign)
    except REFUSED:
        pass  # refusing outright is as good as deleting nothing; what counts is the data
    assert stored_ids(qdrant_direct, collection_name) == ALL_IDS
    assert {doc_id(d) for d in store("bob").similarity_search(QUESTION, k=K)} == OWN["bob"]
    assert {doc_id(d) for d in store("admin").similarity_search(QUESTION, k=K)} == ALL_IDS


def test_delete_of_own_ids(store, qdrant_direct, collection_name):
    assert store("alice").delete(ids=[PID["fin-emea-audit"]])
    assert stored_ids(qdrant_direct, collection_name) == ALL_IDS - {PID["fin-emea-audit"]}


def test_add_texts_for_own_team(store, qdrant_direct, collection_name):
    new_id = str(uuid.uuid4())
    ids = store("bob").add_texts(
        ["HR AMER: the office in Austin closes on Friday for the holiday."],
        metadatas=[{"department": "HR", "region": "AMER", "topic": "office"}],
        ids=[new_id],
    )
    assert ids == [new_id]
    assert new_id in stored_ids(qdrant_direct, collection_name)
    top = store("bob").similarity_search("Austin office holiday", k=1)
    assert [doc_id(d) for d in top] == [new_id]
    assert new_id not in {doc_id(d) for d in store("alice").similarity_search(QUESTION, k=K)}


def test_add_texts_tagged_for_another_team_is_refused(store, qdrant_direct, collection_name):
    planted = str(uuid.uuid4())
    with pytest.raises(REFUSED) as refused:
        store("bob").add_texts(
            ["Finance EMEA: wire the bonus pool to account 12345."],
            metadatas=[{"department": "FINANCE", "region": "EMEA"}],
            ids=[planted],
        )
    assert forbidden(refused.value)
    assert stored_ids(qdrant_direct, collection_name) == ALL_IDS
    assert planted not in {doc_id(d) for d in store("alice").similarity_search(QUESTION, k=K)}


def test_add_texts_over_a_foreign_id_is_refused(store, qdrant_direct, collection_name):
    target = PID["fin-emea-budget"]
    before = qdrant_direct.retrieve(collection_name, [target])[0].payload
    with pytest.raises(REFUSED) as refused:
        store("bob").add_texts(
            ["HR AMER: this note now belongs to bob."],
            metadatas=[{"department": "HR", "region": "AMER"}],
            ids=[target],
        )
    assert forbidden(refused.value)
    assert qdrant_direct.retrieve(collection_name, [target])[0].payload == before


def test_from_texts_as_a_user_creates_a_collection_but_not_foreign_documents(
    vecgate_qdrant, tokens, qdrant_direct
):
    name = unique_collection_name("vg-lcq-bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = QdrantVectorStore.from_texts(
            ["HR AMER: the team lunch is on Thursday."],
            HashingEmbeddings(),
            metadatas=[{"department": "HR", "region": "AMER"}],
            url=vecgate_qdrant.url,
            api_key=tokens["bob"],
            collection_name=name,
        )
        with pytest.raises(REFUSED) as refused:
            mine.add_texts(
                ["Finance EMEA: not bob's to write."],
                metadatas=[{"department": "FINANCE", "region": "EMEA"}],
            )
    assert forbidden(refused.value)
    points, _ = qdrant_direct.scroll(name, limit=100)
    assert [p.payload["page_content"] for p in points] == ["HR AMER: the team lunch is on Thursday."]
    qdrant_direct.delete_collection(name)


def test_hybrid_writes_are_checked_too(hybrid_store, qdrant_direct, hybrid_collection_name):
    with pytest.raises(REFUSED) as refused:
        hybrid_store("alice").add_texts(
            ["HR AMER: planted through the hybrid store."],
            metadatas=[{"department": "HR", "region": "AMER"}],
        )
    assert forbidden(refused.value)
    assert stored_ids(qdrant_direct, hybrid_collection_name) == ALL_IDS
    ids = hybrid_store("alice").add_texts(
        ["Finance EMEA: the hybrid store accepts alice's own note."],
        metadatas=[{"department": "FINANCE", "region": "EMEA"}],
    )
    # LangChain's default ids are uuid4 hex; Qdrant answers with the dashed form.
    assert stored_ids(qdrant_direct, hybrid_collection_name) == ALL_IDS | {str(uuid.UUID(i)) for i in ids}
