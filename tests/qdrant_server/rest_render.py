"""Qdrant Edge results -> the JSON shapes Qdrant's REST API answers with.

Numbers the engine computes in `f32` (scores, stored vectors) are written the way the server's
serde writes an `f32`: the shortest decimal that reads back as the same `f32` (0.89463294, not
0.8946329355239868). Point ids are integers or lowercase hyphenated UUID strings.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy
import qdrant_edge as edge

from store import Collection


def f32(x: float) -> float:
    return float(str(numpy.float32(x)))


def point_id(pid: Any) -> Any:
    return str(pid) if isinstance(pid, uuid.UUID) else pid


def vector(coll: Collection, vec: Any) -> Any:
    """A point's vectors: a bare list for a single unnamed dense vector, else by name."""
    if vec is None:
        return None
    if isinstance(vec, dict):
        named = {name: _one_vector(v) for name, v in vec.items()}
        if coll.single_vector and set(named) == {""}:
            return named[""]
        return named
    return _one_vector(vec)


def _one_vector(v: Any) -> Any:
    if isinstance(v, edge.SparseVector):
        return {"indices": list(v.indices), "values": [f32(x) for x in v.values]}
    if v and isinstance(v[0], list):
        return [[f32(x) for x in row] for row in v]
    return [f32(x) for x in v]


def _order_value(value: Any) -> Any:
    return value


def scored(coll: Collection, p: Any) -> dict[str, Any]:
    # The engine counts operations from 0, the server from 1.
    out: dict[str, Any] = {"id": point_id(p.id), "version": p.version + 1, "score": f32(p.score)}
    if p.payload is not None:
        out["payload"] = p.payload
    if p.vector is not None:
        out["vector"] = vector(coll, p.vector)
    if p.order_value is not None:
        out["order_value"] = _order_value(p.order_value)
    return out


def record(coll: Collection, r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": point_id(r.id)}
    if r.payload is not None:
        out["payload"] = r.payload
    if r.vector is not None:
        out["vector"] = vector(coll, r.vector)
    if r.order_value is not None:
        out["order_value"] = _order_value(r.order_value)
    return out


# The defaults a v1.18/v1.19 server reports for a collection created without settings.
HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                 "max_indexing_threads": 0, "on_disk": False}
OPTIMIZER_DEFAULTS = {
    "deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
    "max_segment_size": None, "memmap_threshold": None, "indexing_threshold": 10000,
    "flush_interval_sec": 5, "max_optimization_threads": None, "prevent_unoptimized": None,
}
WAL_DEFAULTS = {"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1}


def collection_info(coll: Collection) -> dict[str, Any]:
    info = coll.shard.info()
    schema = {
        key: {"data_type": kind, "points": _indexed_points(coll, key, info)}
        for key, kind in coll.indexed.items()
    }
    config: dict[str, Any] = {
        "params": coll.params,
        "hnsw_config": HNSW_DEFAULTS,
        "optimizer_config": OPTIMIZER_DEFAULTS,
        "wal_config": WAL_DEFAULTS,
        "quantization_config": None,
    }
    if coll.metadata is not None:
        config["metadata"] = coll.metadata
    return {
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": info.indexed_vectors_count,
        "points_count": info.points_count,
        "segments_count": info.segments_count,
        "config": config,
        "payload_schema": schema,
        "update_queue": {"length": 0},
    }


def _indexed_points(coll: Collection, key: str, info: Any) -> int:
    found = info.payload_schema.get(key)
    return found.points if found is not None else 0
