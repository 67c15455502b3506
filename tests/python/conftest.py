"""Session fixtures for the Python tests: the real Chroma server, vecgate in front of it with
the demo's policies (examples/langchain-chroma/policies), tokens for the demo's people, and
the real chromadb client connected as any of them. For Qdrant: a real Qdrant when QDRANT_URL or
QDRANT_BIN gives one, else the Qdrant test double (tests/qdrant_server); guarded by its own API
key, a second vecgate in front of it with the
Qdrant demo's config and policies (examples/langchain-qdrant), and qdrant-client connected as
anyone. Each backend's servers start only when a test asks for them.

vecgate's binary: $VECGATE_BIN, or `cargo build` in the repository (honouring
$CARGO_TARGET_DIR). When a test fails, the tails of vecgate's and Chroma's logs are attached to
its report.
"""

from __future__ import annotations

import os
import secrets
from typing import Callable, Iterator

import pytest

from vecgate_fixtures import (
    QDRANT_API_KEY_ENV,
    QDRANT_CONFIG_TEMPLATE,
    QDRANT_POLICIES_DIR,
    Server,
    connect,
    connect_qdrant,
    find_vecgate_binary,
    mint_token,
    qdrant_kind,
    POLICIES_DIR,
    start_cerbos,
    start_chroma,
    start_qdrant,
    start_vecgate,
    unique_collection_name,
)
from corpus import DOCUMENTS  # examples/langchain-chroma, on sys.path via vecgate_fixtures
from embeddings import embed_text

_RUNNING: list[Server] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _RUNNING:
            report.sections.append((f"{server.name} log (tail)", server.tail()))


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def chroma(tmp_path_factory) -> Iterator[Server]:
    server = start_chroma(tmp_path_factory.mktemp("chroma"))
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture(scope="session")
def vecgate_binary():
    return find_vecgate_binary()


@pytest.fixture(scope="session")
def vecgate(vecgate_binary, chroma, jwt_secret, tmp_path_factory) -> Iterator[Server]:
    server = start_vecgate(
        vecgate_binary, tmp_path_factory.mktemp("vecgate"), chroma.url, jwt_secret
    )
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture(scope="session")
def cerbos_pdp(tmp_path_factory) -> Iterator[Server]:
    """The real Cerbos PDP serving the Chroma demo's policy files."""
    server = start_cerbos(tmp_path_factory.mktemp("cerbos"), POLICIES_DIR)
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture(scope="session")
def vecgate_pdp(vecgate_binary, chroma, cerbos_pdp, jwt_secret, tmp_path_factory) -> Iterator[Server]:
    """vecgate in front of the same Chroma, its decisions from the Cerbos PDP (policies.pdp)
    instead of its own engine."""
    server = start_vecgate(
        vecgate_binary,
        tmp_path_factory.mktemp("vecgate-pdp"),
        chroma.url,
        jwt_secret,
        pdp_url=cerbos_pdp.url,
    )
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture(scope="session")
def tokens(jwt_secret) -> dict[str, str]:
    """Bearer tokens by name. alice and bob are the two employees of the Cerbos recipe; ingest
    is the loading pipeline; admin may do everything; the last three must all be refused."""
    return {
        "alice": mint_token(jwt_secret, "alice", ["user"], department="FINANCE", region="EMEA"),
        "bob": mint_token(jwt_secret, "bob", ["user"], department="HR", region="AMER"),
        "ingest": mint_token(
            jwt_secret, "loader", ["ingest"], department="PLATFORM", region="GLOBAL"
        ),
        "admin": mint_token(jwt_secret, "root", ["admin"], department="IT", region="GLOBAL"),
        "expired": mint_token(
            jwt_secret, "alice", ["user"], ttl_s=-3600, department="FINANCE", region="EMEA"
        ),
        "wrong_secret": mint_token(
            "not-the-secret-" + jwt_secret,
            "alice",
            ["user"],
            department="FINANCE",
            region="EMEA",
        ),
        "garbage": "not.a.jwt",
    }


@pytest.fixture
def connect_as(vecgate, tokens) -> Callable:
    """connect_as("alice") / connect_as("bob", transport="x-chroma-token") -> chromadb client
    talking to vecgate; connect_as(None) sends no token."""

    def _connect(who, transport: str = "bearer"):
        return connect(vecgate.url, tokens[who] if who else None, transport)

    return _connect


@pytest.fixture
def seeded_collection(connect_as) -> Iterator[str]:
    """A fresh collection holding the demo corpus, loaded through vecgate by the ingest
    principal with explicit embeddings. Yields its name; an admin deletes it afterwards."""
    name = unique_collection_name("vg-test")
    loader = connect_as("ingest")
    collection = loader.get_or_create_collection(name)
    collection.add(
        ids=[doc_id for doc_id, _, _ in DOCUMENTS],
        documents=[text for _, text, _ in DOCUMENTS],
        metadatas=[dict(meta) for _, _, meta in DOCUMENTS],
        embeddings=[embed_text(text) for _, text, _ in DOCUMENTS],
    )
    yield name
    try:
        connect_as("admin").delete_collection(name)
    except Exception:  # cleanup only; test_admin_only_deletes_collections covers deletion
        pass


# --------------------------------------------------------------------------------------------
# Qdrant
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def qdrant_api_key() -> str:
    """Qdrant's own API key: the Qdrant under test requires it, vecgate holds it (api_key_env),
    and no application token ever equals it. A running server given by QDRANT_URL has its own,
    which QDRANT_API_KEY must give."""
    if qdrant_kind() == "url":
        key = os.environ.get("QDRANT_API_KEY", "")
        if not key:
            pytest.fail("QDRANT_URL is set but QDRANT_API_KEY is not: the Qdrant tests need a "
                        "server that requires an API key, and that key")
        return key
    return "upstream-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def qdrant(tmp_path_factory, qdrant_api_key) -> Iterator[Server]:
    server = start_qdrant(tmp_path_factory.mktemp("qdrant"), api_key=qdrant_api_key)
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture(scope="session")
def vecgate_qdrant(
    vecgate_binary, qdrant, qdrant_api_key, jwt_secret, tmp_path_factory
) -> Iterator[Server]:
    server = start_vecgate(
        vecgate_binary,
        tmp_path_factory.mktemp("vecgate-qdrant"),
        qdrant.url,
        jwt_secret,
        template=QDRANT_CONFIG_TEMPLATE,
        policies_dir=QDRANT_POLICIES_DIR,
        extra_env={QDRANT_API_KEY_ENV: qdrant_api_key},
        health_path="/healthz",
        grpc_upstream_url=qdrant.extra["grpc_url"],
    )
    server.name = "vecgate (qdrant)"
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture
def qdrant_as(vecgate_qdrant, tokens) -> Callable:
    """qdrant_as("alice") / qdrant_as("bob", transport="token_provider") -> QdrantClient
    talking to vecgate (transports "grpc_api_key", "grpc_token_provider": over its gRPC
    listener; asynchronous=True: an AsyncQdrantClient); qdrant_as(None) sends no credentials."""

    def _connect(who, transport: str = "api_key", asynchronous: bool = False):
        return connect_qdrant(vecgate_qdrant.url, tokens[who] if who else None, transport,
                              vecgate_qdrant.extra["grpc_port"], asynchronous)

    return _connect


@pytest.fixture
def qdrant_direct(qdrant, qdrant_api_key):
    """QdrantClient straight to the Qdrant test server with its API key, bypassing vecgate: the
    independent witness of what is really stored."""
    return connect_qdrant(qdrant.url, qdrant_api_key, "api_key")
