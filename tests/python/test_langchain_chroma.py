"""langchain-chroma used exactly as its docs show, with the client pointed at vecgate.

The application code below is the same for every caller; only the token in the client's
headers differs. Every test runs against vecgate with its own policy engine and against vecgate
asking the real Cerbos PDP (`policies.pdp`) that serves the same policy files. The corpus and embedding are the demo's (examples/langchain-chroma).
"""

from __future__ import annotations

import json

import pytest
from langchain_chroma import Chroma

from corpus import DOCUMENTS, ids_for
from embeddings import HashingEmbeddings
from vecgate_fixtures import connect, unique_collection_name

ALL_IDS = {doc_id for doc_id, _, _ in DOCUMENTS}
OWN = {"alice": ids_for("FINANCE", "EMEA"), "bob": ids_for("HR", "AMER")}
TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
QUESTION = "What changes next quarter?"
K = len(DOCUMENTS)  # ask for more than anyone may see


@pytest.fixture(params=["embedded", "pdp"])
def connect_as(request, tokens):
    """The story runs twice: vecgate deciding with its own engine (the demo's policy
    directory), and vecgate asking the real Cerbos PDP serving the same policy files."""
    server = request.getfixturevalue("vecgate" if request.param == "embedded" else "vecgate_pdp")

    def _connect(who, transport: str = "bearer"):
        return connect(server.url, tokens[who] if who else None, transport)

    return _connect


@pytest.fixture
def collection_name(connect_as):
    """A fresh collection loaded through vecgate with LangChain's add_texts by the ingest
    principal (the loader's code is the demo's)."""
    name = unique_collection_name("vg-lc")
    loader = Chroma(
        client=connect_as("ingest"), collection_name=name, embedding_function=HashingEmbeddings()
    )
    loader.add_texts(
        texts=[text for _, text, _ in DOCUMENTS],
        metadatas=[dict(meta) for _, _, meta in DOCUMENTS],
        ids=[doc_id for doc_id, _, _ in DOCUMENTS],
    )
    yield name
    try:
        connect_as("admin").delete_collection(name)
    except Exception:  # cleanup only
        pass


@pytest.fixture
def store(connect_as, collection_name):
    """store("alice") -> the app's vector store, connected as that person."""

    def _store(who):
        return Chroma(
            client=connect_as(who),
            collection_name=collection_name,
            embedding_function=HashingEmbeddings(),
        )

    return _store


def test_each_variant_decides_with_its_own_source(request, store):
    """The embedded variant records its policy set's version; the PDP variant records none
    (the PDP versions its own store), so the story above really ran through the PDP."""
    store("alice").similarity_search(QUESTION, k=1)
    source = request.node.callspec.params["connect_as"]
    server = request.getfixturevalue("vecgate" if source == "embedded" else "vecgate_pdp")
    lines = [json.loads(line) for line in server.extra["audit_path"].read_text().splitlines()]
    reads = [e for e in lines if e["subject"] == "alice" and e["action"] == "read" and e["status"] == 200]
    assert reads, lines[-5:]
    versions = {e["policy_version"] for e in reads}
    if source == "pdp":
        assert versions == {None}
    else:
        assert versions and all(isinstance(v, int) for v in versions)


def team_of(doc):
    return (doc.metadata["department"], doc.metadata["region"])


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_similarity_search_sees_only_own_documents(store, who):
    docs = store(who).similarity_search(QUESTION, k=K)
    assert {d.id for d in docs} == OWN[who]
    assert len(docs) == len(OWN[who])
    assert all(team_of(d) == TEAM[who] for d in docs)


def test_alice_and_bob_get_different_answers_to_the_same_question(store):
    alice = [d.page_content for d in store("alice").similarity_search(QUESTION, k=2)]
    bob = [d.page_content for d in store("bob").similarity_search(QUESTION, k=2)]
    assert alice and bob
    assert not set(alice) & set(bob)


def test_retrieval_still_ranks_by_meaning(store):
    # The best budget match for alice is her own budget note, not an AMER one she may not see.
    top = store("alice").similarity_search("budget travel spending", k=1)
    assert [d.id for d in top] == ["fin-emea-budget"]
    top = store("bob").similarity_search("health insurance enrolment", k=1)
    assert [d.id for d in top] == ["hr-amer-benefits"]


def test_user_filter_is_combined_with_the_policy(store):
    alice = store("alice")
    assert [d.id for d in alice.similarity_search(QUESTION, k=K, filter={"topic": "audit"})] == [
        "fin-emea-audit"
    ]
    # A filter naming someone else's department finds nothing instead of their documents.
    assert alice.similarity_search(QUESTION, k=K, filter={"department": "HR"}) == []
    assert alice.similarity_search(QUESTION, k=K, filter={"region": "AMER"}) == []


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_similarity_search_with_score(store, who):
    scored = store(who).similarity_search_with_score(QUESTION, k=K)
    assert {d.id for d, _ in scored} == OWN[who]
    scores = [s for _, s in scored]
    assert scores == sorted(scores)  # distances, nearest first


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_max_marginal_relevance_search(store, who):
    docs = store(who).max_marginal_relevance_search(QUESTION, k=K, fetch_k=K)
    assert {d.id for d in docs} == OWN[who]
    assert all(team_of(d) == TEAM[who] for d in docs)


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_retriever_invoke(store, who):
    docs = store(who).as_retriever(search_kwargs={"k": K}).invoke(QUESTION)
    assert {d.id for d in docs} == OWN[who]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_get_returns_only_own_documents(store, who):
    got = store(who).get()
    assert set(got["ids"]) == OWN[who]
    assert all((m["department"], m["region"]) == TEAM[who] for m in got["metadatas"])


def test_get_by_ids_leaves_out_foreign_ids(store):
    got = store("alice").get(ids=["fin-emea-budget", "hr-amer-benefits", "fin-amer-tax"])
    assert got["ids"] == ["fin-emea-budget"]
    assert [d.id for d in store("alice").get_by_ids(["hr-amer-benefits", "fin-emea-audit"])] == [
        "fin-emea-audit"
    ]


def test_delete_of_foreign_ids_deletes_nothing(store):
    try:
        store("alice").delete(ids=["hr-amer-benefits", "hr-amer-reviews"])
    except Exception:
        pass  # refusing outright is as good as deleting nothing; what counts is the data
    assert set(store("ingest").get()["ids"]) == ALL_IDS
    assert {d.id for d in store("bob").similarity_search(QUESTION, k=K)} == OWN["bob"]


def test_delete_of_own_ids(store):
    store("alice").delete(ids=["fin-emea-audit"])
    assert set(store("ingest").get()["ids"]) == ALL_IDS - {"fin-emea-audit"}


def test_add_texts_for_own_team(store):
    ids = store("bob").add_texts(
        ["HR AMER: the office in Austin closes on Friday for the holiday."],
        metadatas=[{"department": "HR", "region": "AMER", "topic": "office"}],
        ids=["hr-amer-office"],
    )
    assert ids == ["hr-amer-office"]
    top = store("bob").similarity_search("Austin office holiday", k=1)
    assert [d.id for d in top] == ["hr-amer-office"]
    assert "hr-amer-office" not in {d.id for d in store("alice").similarity_search(QUESTION, k=K)}


def test_add_texts_tagged_for_another_team_is_refused(store):
    with pytest.raises(Exception):
        store("bob").add_texts(
            ["Finance EMEA: wire the bonus pool to account 12345."],
            metadatas=[{"department": "FINANCE", "region": "EMEA"}],
            ids=["planted"],
        )
    assert "planted" not in store("ingest").get()["ids"]
    assert "planted" not in {d.id for d in store("alice").similarity_search(QUESTION, k=K)}


def test_update_document_of_another_team_changes_nothing(store):
    # bob may not read the record, so the update is answered as Chroma answers an update of
    # an id it does not have: no error, and the record stays as it was.
    from langchain_core.documents import Document

    store("bob").update_document(
        "fin-emea-budget",
        Document(
            page_content="Finance EMEA: budget doubled.",
            metadata={"department": "FINANCE", "region": "EMEA", "topic": "budget"},
        ),
    )
    got = store("ingest").get(ids=["fin-emea-budget"])
    assert got["documents"] == [DOCUMENTS[0][1]]


def test_store_built_from_host_port_and_headers(vecgate, tokens, collection_name):
    # LangChain's other documented way to reach a Chroma server, without building a client.
    port = int(vecgate.url.rsplit(":", 1)[1])
    alice = Chroma(
        collection_name=collection_name,
        embedding_function=HashingEmbeddings(),
        host="127.0.0.1",
        port=port,
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert {d.id for d in alice.similarity_search(QUESTION, k=K)} == OWN["alice"]
