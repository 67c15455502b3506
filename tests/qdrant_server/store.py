"""The double's store: collections, each one Qdrant Edge shard, behind one lock.

This is the part a REST face (rest_api.py) and a later gRPC face share: it holds no HTTP or
JSON-envelope knowledge. A collection is what Qdrant's collection layer keeps above a shard:
the configuration it was created with (rendered back by `GET /collections/{name}`), its
payload indexes, its metadata, and the operation counter whose numbers become `operation_id`.

Invariants:
* every shard lives in its own temporary directory, removed when the collection is deleted
  or the store closes;
* every read or write of a shard happens under `Store.lock` (Edge shards are safe to share,
  but the collection bookkeeping around them is not);
* a collection's `indexed` map is exactly the payload indexes created on its shard.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

import qdrant_edge as edge


class NotFound(Exception):
    """A collection that does not exist (the REST face answers 404)."""


class AlreadyExists(Exception):
    """A collection name already taken (the REST face answers 400)."""


@dataclass
class Collection:
    name: str
    shard: edge.EdgeShard
    path: str
    # The `params` block of `GET /collections/{name}` (vectors, sparse_vectors, …) as given.
    params: dict[str, Any]
    # True when the collection was created with one unnamed dense vector (`"vectors": {size,…}`),
    # which Qdrant renders as a bare list instead of `{"": […]}`.
    single_vector: bool
    dense: dict[str, dict[str, Any]]
    sparse: dict[str, dict[str, Any]]
    metadata: dict[str, Any] | None = None
    indexed: dict[str, str] = field(default_factory=dict)
    operations: int = 0

    def next_operation(self) -> int:
        self.operations += 1
        return self.operations

    def update(self, op: Any) -> None:
        self.shard.update(op)


class Store:
    def __init__(self, parent: str | None = None) -> None:
        self.lock = threading.RLock()
        self.root = tempfile.mkdtemp(prefix="qdrant-double-", dir=parent)
        self.collections: dict[str, Collection] = {}

    def get(self, name: str) -> Collection:
        found = self.collections.get(name)
        if found is None:
            raise NotFound(name)
        return found

    def names(self) -> list[str]:
        return list(self.collections)

    def create(
        self,
        name: str,
        config: edge.EdgeConfig,
        *,
        params: dict[str, Any],
        single_vector: bool,
        dense: dict[str, dict[str, Any]],
        sparse: dict[str, dict[str, Any]],
        metadata: dict[str, Any] | None,
    ) -> Collection:
        if name in self.collections:
            raise AlreadyExists(name)
        path = tempfile.mkdtemp(prefix="shard-", dir=self.root)
        shard = edge.EdgeShard.create(path, config)
        coll = Collection(
            name=name, shard=shard, path=path, params=params, single_vector=single_vector,
            dense=dense, sparse=sparse, metadata=metadata,
        )
        self.collections[name] = coll
        return coll

    def delete(self, name: str) -> bool:
        coll = self.collections.pop(name, None)
        if coll is None:
            return False
        coll.shard.close()
        shutil.rmtree(coll.path, ignore_errors=True)
        return True

    def close(self) -> None:
        for name in list(self.collections):
            self.delete(name)
        shutil.rmtree(self.root, ignore_errors=True)
