"""The client matrix on Qdrant: every client of matrix_qdrant_clients.py, through vecgate as
alice (FINANCE/EMEA) and as bob (HR/AMER), gives exactly the answers the same calls give
straight against a Qdrant collection that holds only that person's points; their attempts on
the other department's points are refused or change nothing; and what each client sends
equals its row in client_traffic.py. See client_matrix.py for how.

Qdrant is the `qdrant` fixture (conftest.py), so the matrix runs against whichever Qdrant the
test command provides; vecgate gets matrix-qdrant.yaml.template (one collection rule per
payload layout).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from client_matrix import (
    Env,
    RecordingProxy,
    all_documents,
    assert_same_transcript,
    dump_traffic,
    own_documents,
    traffic_by_route,
    unique_name,
)
from client_traffic import QDRANT_TRAFFIC
from matrix_qdrant_clients import PID, qdrant_clients, stored_points
from vecgate_fixtures import QDRANT_API_KEY_ENV, QDRANT_POLICIES_DIR, start_vecgate

CLIENTS = {c.name: c for c in qdrant_clients()}
TEMPLATE = Path(__file__).with_name("matrix-qdrant.yaml.template")


@pytest.fixture(scope="module")
def matrix_vecgate(vecgate_binary, qdrant, qdrant_api_key, jwt_secret, tmp_path_factory):
    server = start_vecgate(
        vecgate_binary,
        tmp_path_factory.mktemp("vecgate-matrix-qdrant"),
        qdrant.url,
        jwt_secret,
        template=TEMPLATE,
        policies_dir=QDRANT_POLICIES_DIR,
        extra_env={QDRANT_API_KEY_ENV: qdrant_api_key},
        health_path="/healthz",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recorder(matrix_vecgate):
    proxy = RecordingProxy(matrix_vecgate.url)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("who", ["alice", "bob"])
@pytest.mark.parametrize("name", list(CLIENTS))
def test_client_through_vecgate_equals_its_own_view(name, who, qdrant, qdrant_api_key, recorder, tokens):
    client = CLIENTS[name]
    full = unique_name(client.prefix, name, who)
    view = unique_name(client.prefix, name, who)
    client.seed(Env(qdrant.url, qdrant_api_key, full, who, False), all_documents())
    client.seed(Env(qdrant.url, qdrant_api_key, view, who, False), own_documents(who))

    recorder.label = name
    through = Env(recorder.url, tokens[who], full, who, True)
    got = client.scenario(through)
    want = client.scenario(Env(qdrant.url, qdrant_api_key, view, who, False))
    assert_same_transcript(got, want, f"{name} as {who}")

    # The other department's points, and every id a foreign attempt tries to plant.
    watched = [PID[i] for i in through.other_ids()] + [
        PID[f"planted-{x}"] for x in ("qdrant", "langchain", "llama", "haystack", "js")
    ]
    if client.prefix == "hs":
        from haystack_integrations.document_stores.qdrant.converters import convert_id

        watched = [convert_id(i) for i in through.other_ids() + ["planted-haystack"]]
    before = stored_points(qdrant.url, qdrant_api_key, full, watched)
    client.foreign(through)
    assert stored_points(qdrant.url, qdrant_api_key, full, watched) == before, (
        "the other department's points changed"
    )

    traffic = traffic_by_route(recorder.take(name))
    if dump_traffic(name, traffic):
        return
    assert traffic == QDRANT_TRAFFIC.get(name), (
        f"{name} sent requests that client_traffic.py does not list (or no longer sends some)"
    )
