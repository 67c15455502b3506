"""The real chromadb HTTP client, used exactly as its docs show, talking to vecgate instead of
Chroma. Only the address and the token change.

Every test that uses `transport` runs twice: once with a plain `Authorization: Bearer` header
(`HttpClient(headers=...)`) and once through chromadb's own token provider sending
`X-Chroma-Token` (`Settings(chroma_client_auth_provider=...)`).

The collection holds the demo corpus (examples/langchain-chroma/corpus.py): two documents for
each of FINANCE/HR × EMEA/AMER. alice is FINANCE/EMEA, bob is HR/AMER; each may see and change
only their own two. The ingest principal loads and reads everything and serves as the
independent witness of what is really stored.
"""

from __future__ import annotations

import pytest
import requests

from corpus import DOCUMENTS, ids_for
from embeddings import embed_text
from vecgate_fixtures import unique_collection_name

ALL_IDS = {doc_id for doc_id, _, _ in DOCUMENTS}
TEXT = {doc_id: text for doc_id, text, _ in DOCUMENTS}
META = {doc_id: meta for doc_id, _, meta in DOCUMENTS}
OWN = {"alice": ids_for("FINANCE", "EMEA"), "bob": ids_for("HR", "AMER")}
TEAM = {"alice": ("FINANCE", "EMEA"), "bob": ("HR", "AMER")}
QUESTION = "What changes next quarter?"

# Records that belong to neither alice nor bob, and one of bob's as seen from alice.
BOBS_RECORD = "hr-amer-benefits"
ALICES_RECORD = "fin-emea-audit"


@pytest.fixture(params=["bearer", "x-chroma-token"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def open_as(connect_as, transport, seeded_collection):
    """open_as("alice") -> the seeded collection, opened by that person the way an app does
    (get_or_create_collection), through vecgate with the parametrised token transport."""

    def _open(who):
        return connect_as(who, transport).get_or_create_collection(seeded_collection)

    return _open


@pytest.fixture
def witness(connect_as, seeded_collection):
    """The seeded collection as the ingest principal sees it: every record."""
    return connect_as("ingest").get_collection(seeded_collection)


def stored(witness, doc_id):
    """(document, metadata) of `doc_id` as really stored, or None when it does not exist."""
    got = witness.get(ids=[doc_id], include=["documents", "metadatas"])
    if not got["ids"]:
        return None
    return got["documents"][0], got["metadatas"][0]


def vector(text):
    return embed_text(text)


# --------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------


def test_user_can_get_or_create_a_collection(connect_as, transport):
    name = unique_collection_name("vg-alice-own")
    created = connect_as("alice", transport).get_or_create_collection(name)
    assert created.name == name
    # Opening it again is a read, and the loader sees the same collection.
    assert connect_as("alice", transport).get_or_create_collection(name).id == created.id
    assert connect_as("ingest").get_collection(name).id == created.id
    connect_as("admin").delete_collection(name)


def test_only_admin_deletes_a_collection(connect_as, transport, seeded_collection):
    with pytest.raises(Exception):
        connect_as("alice", transport).delete_collection(seeded_collection)
    assert connect_as("ingest").get_collection(seeded_collection).count() == len(DOCUMENTS)

    connect_as("admin", transport).delete_collection(seeded_collection)
    with pytest.raises(Exception):
        connect_as("ingest").get_collection(seeded_collection)


# --------------------------------------------------------------------------------------
# Reads: query, get, count, peek
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_query_returns_only_own_records(open_as, who):
    collection = open_as(who)
    result = collection.query(query_embeddings=[vector(QUESTION)], n_results=len(DOCUMENTS))
    ids = result["ids"][0]
    assert set(ids) == OWN[who]
    assert len(ids) == len(OWN[who])
    # Every parallel array was trimmed the same way and still lines up.
    assert result["documents"][0] == [TEXT[i] for i in ids]
    assert [(m["department"], m["region"]) for m in result["metadatas"][0]] == [TEAM[who]] * len(ids)
    assert len(result["distances"][0]) == len(ids)


def test_query_ands_the_users_own_where(open_as):
    collection = open_as("alice")
    budget = collection.query(
        query_embeddings=[vector("budget")], n_results=len(DOCUMENTS), where={"topic": "budget"}
    )
    assert budget["ids"][0] == ["fin-emea-budget"]
    # Asking for another region explicitly does not widen the view.
    amer = collection.query(
        query_embeddings=[vector("budget")], n_results=len(DOCUMENTS), where={"region": "AMER"}
    )
    assert amer["ids"][0] == []


def test_query_restricted_to_foreign_ids_returns_nothing(open_as):
    collection = open_as("alice")
    result = collection.query(
        query_embeddings=[vector(QUESTION)],
        n_results=len(DOCUMENTS),
        ids=[BOBS_RECORD, "hr-emea-leave", "fin-emea-budget"],
    )
    assert result["ids"][0] == ["fin-emea-budget"]


def test_query_without_metadatas_is_filtered_and_trimmed(open_as):
    result = open_as("bob").query(
        query_embeddings=[vector(QUESTION)], n_results=len(DOCUMENTS), include=["documents"]
    )
    assert set(result["ids"][0]) == OWN["bob"]
    assert result["metadatas"] is None


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_get_without_filter_returns_only_own_records(open_as, who):
    result = open_as(who).get()
    assert set(result["ids"]) == OWN[who]
    assert len(result["ids"]) == len(OWN[who])
    assert result["documents"] == [TEXT[i] for i in result["ids"]]
    assert result["metadatas"] == [META[i] for i in result["ids"]]


def test_get_with_where(open_as):
    collection = open_as("alice")
    # Other departments also have EMEA records; alice still gets only hers.
    assert set(collection.get(where={"region": "EMEA"})["ids"]) == OWN["alice"]
    assert collection.get(where={"department": "HR"})["ids"] == []
    assert collection.get(where={"topic": "audit"})["ids"] == ["fin-emea-audit"]


def test_get_by_ids_leaves_out_other_peoples_records(open_as):
    got = open_as("alice").get(ids=["fin-emea-budget", BOBS_RECORD, "hr-emea-leave"])
    assert got["ids"] == ["fin-emea-budget"]
    assert open_as("alice").get(ids=[BOBS_RECORD])["ids"] == []


def test_get_without_metadatas_is_filtered_and_trimmed(open_as):
    result = open_as("alice").get(include=["documents"])
    assert set(result["ids"]) == OWN["alice"]
    assert result["metadatas"] is None
    assert result["documents"] == [TEXT[i] for i in result["ids"]]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_count_counts_only_visible_records(open_as, witness, who):
    assert open_as(who).count() == len(OWN[who])
    assert witness.count() == len(DOCUMENTS)


def test_peek_shows_only_own_records(open_as):
    peeked = open_as("bob").peek()
    assert set(peeked["ids"]) == OWN["bob"]
    assert len(peeked["embeddings"]) == len(OWN["bob"])


# --------------------------------------------------------------------------------------
# Writes: add, upsert, update, delete
# --------------------------------------------------------------------------------------


def test_add_own_department_record(open_as, witness):
    text = "Finance EMEA: the Q3 close moves to the second working day."
    open_as("alice").add(
        ids=["fin-emea-close"],
        documents=[text],
        metadatas=[{"department": "FINANCE", "region": "EMEA", "topic": "close"}],
        embeddings=[vector(text)],
    )
    assert stored(witness, "fin-emea-close") == (
        text,
        {"department": "FINANCE", "region": "EMEA", "topic": "close"},
    )
    assert "fin-emea-close" in open_as("alice").get()["ids"]
    assert "fin-emea-close" not in open_as("bob").get()["ids"]


def test_add_tagged_for_another_department_is_refused(open_as, witness):
    text = "HR AMER: an announcement alice should not be able to plant."
    with pytest.raises(Exception):
        open_as("alice").add(
            ids=["planted"],
            documents=[text],
            metadatas=[{"department": "HR", "region": "AMER"}],
            embeddings=[vector(text)],
        )
    assert stored(witness, "planted") is None
    assert "planted" not in open_as("bob").get()["ids"]


def test_batch_with_one_refused_record_writes_nothing(open_as, witness):
    with pytest.raises(Exception):
        open_as("alice").add(
            ids=["fin-emea-ok", "fin-amer-not-ok"],
            documents=["mine", "not mine"],
            metadatas=[
                {"department": "FINANCE", "region": "EMEA"},
                {"department": "FINANCE", "region": "AMER"},
            ],
            embeddings=[vector("mine"), vector("not mine")],
        )
    assert stored(witness, "fin-emea-ok") is None
    assert stored(witness, "fin-amer-not-ok") is None


def test_write_without_required_attributes_is_refused(connect_as, seeded_collection, witness):
    # Even the loader, which may create anything, cannot store a record that lacks the
    # attributes the read filter relies on.
    loader = connect_as("ingest").get_collection(seeded_collection)
    with pytest.raises(Exception):
        loader.add(
            ids=["untagged"],
            documents=["no department, no region"],
            metadatas=[{"topic": "misc"}],
            embeddings=[vector("no department, no region")],
        )
    assert stored(witness, "untagged") is None


def test_upsert_own_record(open_as, witness):
    text = "Finance EMEA: the audit now starts in April."
    open_as("alice").upsert(
        ids=[ALICES_RECORD],
        documents=[text],
        metadatas=[{"department": "FINANCE", "region": "EMEA", "topic": "audit"}],
        embeddings=[vector(text)],
    )
    assert stored(witness, ALICES_RECORD)[0] == text


def test_upsert_over_another_departments_record_is_refused(open_as, witness):
    before = stored(witness, BOBS_RECORD)
    with pytest.raises(Exception):
        open_as("alice").upsert(
            ids=[BOBS_RECORD],
            documents=["taken over by alice"],
            metadatas=[{"department": "FINANCE", "region": "EMEA"}],
            embeddings=[vector("taken over by alice")],
        )
    assert stored(witness, BOBS_RECORD) == before


def test_update_of_a_foreign_record_changes_nothing(open_as, witness):
    # alice may not read bob's record, so an update of it is answered exactly as Chroma
    # answers an update of an id it does not have: accepted, and nothing changes.
    before = stored(witness, BOBS_RECORD)
    open_as("alice").update(
        ids=[BOBS_RECORD], metadatas=[{"department": "FINANCE", "region": "EMEA"}]
    )
    open_as("alice").update(ids=[BOBS_RECORD], metadatas=[{"topic": "vandalised"}])
    open_as("alice").update(ids=["no-such-record"], metadatas=[{"topic": "vandalised"}])
    assert stored(witness, BOBS_RECORD) == before
    assert stored(witness, "no-such-record") is None


def test_update_that_moves_own_record_to_another_department_is_refused(open_as, witness):
    before = stored(witness, ALICES_RECORD)
    with pytest.raises(Exception):
        open_as("alice").update(ids=[ALICES_RECORD], metadatas=[{"department": "HR"}])
    assert stored(witness, ALICES_RECORD) == before


def test_update_own_record(open_as, witness):
    open_as("alice").update(ids=[ALICES_RECORD], metadatas=[{"topic": "audit-2026"}])
    assert stored(witness, ALICES_RECORD)[1] == {
        "department": "FINANCE",
        "region": "EMEA",
        "topic": "audit-2026",
    }


def test_delete_by_foreign_ids_deletes_nothing(open_as, witness):
    try:
        open_as("alice").delete(ids=[BOBS_RECORD, "hr-emea-leave"])
    except Exception:
        pass  # refusing outright is as good as deleting nothing; what counts is the data
    assert stored(witness, BOBS_RECORD) is not None
    assert stored(witness, "hr-emea-leave") is not None
    assert witness.count() == len(DOCUMENTS)


def test_delete_by_where_deletes_only_own_records(open_as, witness):
    open_as("alice").delete(where={"topic": "budget"})
    remaining = set(witness.get()["ids"])
    assert remaining == ALL_IDS - {"fin-emea-budget"}


def test_delete_own_record(open_as, witness):
    open_as("alice").delete(ids=[ALICES_RECORD])
    assert stored(witness, ALICES_RECORD) is None
    assert witness.count() == len(DOCUMENTS) - 1


# --------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------


def test_client_without_token_gets_nothing(connect_as, seeded_collection):
    name = unique_collection_name("vg-anon")
    with pytest.raises(Exception):
        connect_as(None).get_or_create_collection(name)
    with pytest.raises(Exception):
        connect_as(None).get_collection(seeded_collection).get()
    with pytest.raises(Exception):
        connect_as("ingest").get_collection(name)


@pytest.fixture
def collection_url(vecgate, connect_as, seeded_collection) -> str:
    collection_id = connect_as("ingest").get_collection(seeded_collection).id
    return (
        f"{vecgate.url}/api/v2/tenants/default_tenant/databases/default_database"
        f"/collections/{collection_id}"
    )


@pytest.mark.parametrize(
    "header,bad",
    [("Authorization", None)]
    + [(h, b) for h in ("Authorization", "X-Chroma-Token") for b in ("garbage", "expired", "wrong_secret")],
)
def test_missing_or_bad_token_is_401(collection_url, tokens, header, bad):
    headers = {}
    if bad is not None:
        value = tokens[bad]
        headers[header] = f"Bearer {value}" if header == "Authorization" else value
    resp = requests.post(f"{collection_url}/get", json={}, headers=headers, timeout=10)
    assert resp.status_code == 401
    assert "Bearer" in resp.headers.get("WWW-Authenticate", "")
    # The same request with a good token works, so the 401 is about the token.
    good = tokens["alice"]
    headers[header] = f"Bearer {good}" if header == "Authorization" else good
    resp = requests.post(f"{collection_url}/get", json={}, headers=headers, timeout=10)
    assert resp.status_code == 200
    assert set(resp.json()["ids"]) == OWN["alice"]


def test_denied_write_is_403_in_chromas_error_shape(collection_url, tokens, witness):
    body = {
        "ids": ["raw-planted"],
        "embeddings": [vector("raw")],
        "documents": ["raw"],
        "metadatas": [{"department": "HR", "region": "AMER"}],
    }
    resp = requests.post(
        f"{collection_url}/add",
        json=body,
        headers={"Authorization": f"Bearer {tokens['alice']}"},
        timeout=10,
    )
    assert resp.status_code == 403
    error = resp.json()
    assert isinstance(error.get("error"), str) and isinstance(error.get("message"), str)
    assert stored(witness, "raw-planted") is None
