"""What each client of the matrix sends, per route: the query parameters and body fields seen
in its real traffic through vecgate (recorded by client_matrix.RecordingProxy). The matrix
tests require each client's traffic to equal its entry here, so a client release that starts
sending a new parameter or field fails a test (and someone checks that vecgate classifies it)
rather than a user.

Routes are written with their variable segments named. Body fields are the top-level keys,
plus one level down under Qdrant's `query` object, `batch` columns and `operations` entries.
"""

# Chroma. What vecgate does with each (src/backends/chroma/routes.rs, request.rs; README
# "What each Chroma request gets"):
# - query parameters: `read_level` on count (checked against Chroma's levels; count is answered
#   from a filtered get), `tenant` on get_database (AsyncHttpClient only; Chroma ignores it).
# - get/query/delete bodies: `where` and `where_document` get the read (delete) filter ANDed
#   in, `ids` stay (intersected with it), `include` is forced to carry metadatas and trimmed
#   back, `limit`/`offset`/`n_results`/`query_embeddings` are forwarded.
# - add/upsert/update bodies: one decision per record from `ids` and `metadatas`; `documents`,
#   `embeddings`, `uris` forwarded (records the caller may not read are dropped from updates).
# - create collection: `name` (the collection decision), `get_or_create` (read if it exists),
#   `configuration`, `metadata`, `schema` forwarded.
# - tenant, database, identity and pre-flight routes: authenticated, passed through.
CHROMA_TRAFFIC: dict = {
    "chroma-haystack": {
        "GET /api/v2/auth/identity": {"query": [], "body": []},
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/count": {"query": ["read_level"], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/upsert": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
    },
    "chromadb": {
        "GET /api/v2/auth/identity": {"query": [], "body": []},
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/count": {"query": ["read_level"], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": ["configuration", "get_or_create", "metadata", "name", "schema"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/add": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/update": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/upsert": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
    },
    "chromadb-async": {
        "GET /api/v2/auth/identity": {"query": [], "body": []},
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}": {"query": ["tenant"], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/count": {"query": ["read_level"], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": ["configuration", "get_or_create", "metadata", "name", "schema"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/add": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/update": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/upsert": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
    },
    "chromadb-js": {
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/count": {"query": [], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": ["configuration", "get_or_create", "name"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/add": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/update": {"query": [], "body": ["ids", "metadatas"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/upsert": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas"]},
    },
    "langchain-chroma": {
        "GET /api/v2/auth/identity": {"query": [], "body": []},
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}": {"query": [], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": ["configuration", "get_or_create", "metadata", "name", "schema"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/update": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/upsert": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
    },
    "llama-index-chroma": {
        "GET /api/v2/auth/identity": {"query": [], "body": []},
        "GET /api/v2/pre-flight-checks": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}": {"query": [], "body": []},
        "GET /api/v2/tenants/{tenant}/databases/{database}": {"query": [], "body": []},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections": {"query": [], "body": ["configuration", "get_or_create", "metadata", "name", "schema"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/add": {"query": [], "body": ["documents", "embeddings", "ids", "metadatas", "uris"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/delete": {"query": [], "body": ["ids", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/get": {"query": [], "body": ["ids", "include", "limit", "offset", "where", "where_document"]},
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query": {"query": [], "body": ["ids", "include", "n_results", "query_embeddings", "where", "where_document"]},
    },
}

# Qdrant. What vecgate does with each (src/backends/qdrant/routes.rs, request.rs; README
# "Running vecgate in front of Qdrant"):
# - query parameters: `wait` on writes (checked as a boolean, forwarded; with wait=true a write
#   naming a point the caller may not read is answered 404 as for a missing point).
# - query, query/batch (`searches`), query/groups, scroll, count: `filter` gets the read filter
#   ANDed in (also in every `prefetch` and batch entry); `query` point ids (`query.nearest` as
#   an id, `query.recommend`) must be readable; `with_payload` forced and trimmed back;
#   `limit`, `offset`, `using`, `exact`, `group_by`, `group_size`, `with_vector`, `query.mmr`,
#   `query.fusion` forwarded.
# - retrieve (`ids`): every returned point checked. Upsert (`points`), payload and vector
#   writes (`points`, `filter`, `key`, `keys`, `payload`): one decision per point; by-filter
#   writes narrowed to the points the caller may update. Delete (`points`, `filter`): the
#   delete filter ANDed in.
# - `GET /` (version) passes without a token; collection info and `exists`: collection `read`.
QDRANT_TRAFFIC: dict = {
    "langchain-qdrant": {
        "GET /": {"query": [], "body": []},
        "GET /collections/{collection}": {"query": [], "body": []},
        "POST /collections/{collection}/points": {"query": [], "body": ["ids", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["points"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "offset", "query", "query.mmr", "query.nearest", "using", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
    },
    "llama-index-qdrant": {
        "GET /": {"query": [], "body": []},
        "GET /collections/{collection}": {"query": [], "body": []},
        "GET /collections/{collection}/exists": {"query": [], "body": []},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["filter"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "query", "query.nearest", "using", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/scroll": {"query": [], "body": ["filter", "limit", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
    },
    "qdrant-client": {
        "GET /": {"query": [], "body": []},
        "POST /collections/{collection}/points": {"query": [], "body": ["ids", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/count": {"query": [], "body": ["exact", "filter"]},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["filter", "points"]},
        "POST /collections/{collection}/points/payload": {"query": ["wait"], "body": ["filter", "key", "payload", "points"]},
        "POST /collections/{collection}/points/payload/delete": {"query": ["wait"], "body": ["keys", "points"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "prefetch", "query", "query.fusion", "query.mmr", "query.nearest", "query.recommend", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/query/batch": {"query": [], "body": ["searches"]},
        "POST /collections/{collection}/points/query/groups": {"query": [], "body": ["group_by", "group_size", "limit", "query", "query.nearest", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/scroll": {"query": [], "body": ["filter", "limit", "offset", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
        "PUT /collections/{collection}/points/payload": {"query": ["wait"], "body": ["payload", "points"]},
        "PUT /collections/{collection}/points/vectors": {"query": ["wait"], "body": ["points"]},
    },
    "qdrant-client-async": {
        "GET /": {"query": [], "body": []},
        "POST /collections/{collection}/points": {"query": [], "body": ["ids", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/count": {"query": [], "body": ["exact", "filter"]},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["filter", "points"]},
        "POST /collections/{collection}/points/payload": {"query": ["wait"], "body": ["filter", "key", "payload", "points"]},
        "POST /collections/{collection}/points/payload/delete": {"query": ["wait"], "body": ["keys", "points"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "prefetch", "query", "query.fusion", "query.mmr", "query.nearest", "query.recommend", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/query/batch": {"query": [], "body": ["searches"]},
        "POST /collections/{collection}/points/query/groups": {"query": [], "body": ["group_by", "group_size", "limit", "query", "query.nearest", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/scroll": {"query": [], "body": ["filter", "limit", "offset", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
        "PUT /collections/{collection}/points/payload": {"query": ["wait"], "body": ["payload", "points"]},
        "PUT /collections/{collection}/points/vectors": {"query": ["wait"], "body": ["points"]},
    },
    "qdrant-haystack": {
        "GET /": {"query": [], "body": []},
        "GET /collections/{collection}": {"query": [], "body": []},
        "GET /collections/{collection}/exists": {"query": [], "body": []},
        "POST /collections/{collection}/points": {"query": [], "body": ["ids", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/count": {"query": [], "body": ["exact"]},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["points"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "query", "query.nearest", "with_payload", "with_vector"]},
        "POST /collections/{collection}/points/scroll": {"query": [], "body": ["filter", "limit", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
    },
    "qdrant-js": {
        "POST /collections/{collection}/points": {"query": [], "body": ["ids", "with_payload"]},
        "POST /collections/{collection}/points/count": {"query": [], "body": ["exact"]},
        "POST /collections/{collection}/points/delete": {"query": ["wait"], "body": ["filter", "points"]},
        "POST /collections/{collection}/points/payload": {"query": ["wait"], "body": ["payload", "points"]},
        "POST /collections/{collection}/points/payload/delete": {"query": ["wait"], "body": ["keys", "points"]},
        "POST /collections/{collection}/points/query": {"query": [], "body": ["filter", "limit", "query", "query.mmr", "query.nearest"]},
        "POST /collections/{collection}/points/scroll": {"query": [], "body": ["filter", "limit", "offset", "with_payload", "with_vector"]},
        "PUT /collections/{collection}/points": {"query": ["wait"], "body": ["points"]},
        "PUT /collections/{collection}/points/payload": {"query": ["wait"], "body": ["payload", "points"]},
        "PUT /collections/{collection}/points/vectors": {"query": ["wait"], "body": ["points"]},
    },
}

