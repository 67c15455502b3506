"""Qdrant's REST routes, answered from the store (one Qdrant Edge shard per collection).

Each handler takes the decoded JSON body (or None) and returns the `result` of Qdrant's
envelope, or raises RestError. Three layers, as in the server:

1. reading the body the way the server's serde types do (unknown request fields ignored,
   filters strict: rest_filter.py), into Qdrant Edge request objects;
2. what the server's *collection* layer does above a shard, which Edge (a shard) does not:
   point ids used as query inputs (their vectors are read, a missing one is a 404, and the
   referenced points are excluded from the answer), `lookup_from`, the `average_vector`
   recommend strategy (averaged here as `lib/collection/src/recommendations.rs` does),
   `query/groups`, `search/matrix/*`, the legacy v1.18 search/recommend/discover routes,
   `operation_id`s;
3. the shard itself — filtering, scoring, fusion, order_by, payload indexes, scroll, count,
   facet, retrieve, every write — which is Qdrant Edge, i.e. Qdrant's own engine code.

Engine errors (Edge raises `Exception` with the engine's message) become the server's statuses
in `_engine_call`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable

import qdrant_edge as edge

import rest_render as render
from rest_filter import (
    FilterReader,
    RestError,
    check_key,
    format_error,
    is_int,
    is_number,
    point_id,
    validation_error,
)
from store import AlreadyExists, Collection, NotFound, Store

SERVER_VERSION = "1.19.0"
DEFAULT_LIMIT = 10
DEFAULT_RRF_K = 2  # lib/segment/src/common/reciprocal_rank_fusion.rs
# Large enough to return every point of a test collection from one internal query.
ALL = 1_000_000

DISTANCES = {d: getattr(edge.Distance, d) for d in ("Cosine", "Euclid", "Dot", "Manhattan")}
SCHEMA_TYPES = {
    "keyword": edge.PayloadSchemaType.Keyword,
    "integer": edge.PayloadSchemaType.Integer,
    "float": edge.PayloadSchemaType.Float,
    "bool": edge.PayloadSchemaType.Bool,
    "geo": edge.PayloadSchemaType.Geo,
    "datetime": edge.PayloadSchemaType.Datetime,
    "text": edge.PayloadSchemaType.Text,
    "uuid": edge.PayloadSchemaType.Uuid,
}
UPDATE_MODES = {
    "upsert": edge.UpdateMode.Upsert,
    "insert_only": edge.UpdateMode.InsertOnly,
    "update_only": edge.UpdateMode.UpdateOnly,
}


# ---- body helpers ----------------------------------------------------------------------------


def require_object(body: Any, what: str) -> dict[str, Any]:
    if body is None:
        raise format_error("EOF while parsing a value at line 1 column 0")
    if not isinstance(body, dict):
        raise format_error(f"invalid type: expected struct {what}")
    return body


def _uint(obj: dict[str, Any], key: str, default: int | None, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    if not is_int(value) or value < 0:
        raise format_error(f"{where}{key}: invalid type: expected usize")
    return value


def _limit(obj: dict[str, Any], where: str, default: int = DEFAULT_LIMIT) -> int:
    limit = _uint(obj, "limit", default, where)
    if limit == 0:
        raise validation_error(f"{where}limit", "value 0 invalid, must be 1 or larger")
    return limit  # type: ignore[return-value]


def _bool(obj: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise format_error(f"{where}{key}: invalid type: expected a boolean")
    return value


def with_payload(value: Any, default: bool, where: str) -> Any:
    """`WithPayloadInterface`: bool, a list of keys, `{"include"}` or `{"exclude"}`."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return [check_key(k, where) for k in value]
    if isinstance(value, dict) and len(value) == 1:
        (kind, keys), = value.items()
        if kind in ("include", "exclude") and isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keys = [check_key(k, where) for k in keys]
            return edge.PayloadSelector.Include(keys) if kind == "include" else edge.PayloadSelector.Exclude(keys)
    raise format_error(f"{where}: data did not match any variant of untagged enum WithPayloadInterface")


def with_vector(value: Any, default: bool, where: str) -> Any:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return value
    raise format_error(f"{where}: data did not match any variant of untagged enum WithVector")


def _edge_id(pid: int | str) -> Any:
    return uuid.UUID(pid) if isinstance(pid, str) else pid


def _ids(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise format_error(f"{where}: invalid type: expected a sequence")
    return [point_id(v, f"{where}[{i}]") for i, v in enumerate(value)]


# ---- vectors ---------------------------------------------------------------------------------


def _sparse(value: dict[str, Any], where: str) -> edge.SparseVector:
    indices, values = value.get("indices"), value.get("values")
    if not (isinstance(indices, list) and all(is_int(i) and i >= 0 for i in indices)
            and isinstance(values, list) and all(is_number(v) for v in values)):
        raise format_error(f"{where}: invalid sparse vector")
    if len(indices) != len(values):
        raise validation_error(where, "indices and values must have the same length")
    return edge.SparseVector(indices, [float(v) for v in values])


def _dense_or_multi(value: list[Any], where: str) -> Any:
    if all(is_number(x) for x in value):
        return [float(x) for x in value]
    if value and all(isinstance(row, list) and all(is_number(x) for x in row) for row in value):
        return [[float(x) for x in row] for row in value]
    raise format_error(f"{where}: data did not match any variant of untagged enum Vector")


def stored_vector(value: Any, where: str) -> Any:
    """A vector given for storing: a list, sparse `{indices, values}`, or a multi-vector."""
    if isinstance(value, list):
        return _dense_or_multi(value, where)
    if isinstance(value, dict) and "indices" in value:
        return _sparse(value, where)
    raise format_error(f"{where}: data did not match any variant of untagged enum Vector")


def point_vectors(value: Any, where: str) -> Any:
    """`VectorStruct`: one unnamed vector (a list) or vectors by name."""
    if isinstance(value, list):
        return {"": _dense_or_multi(value, where)}
    if isinstance(value, dict) and "indices" not in value:
        return {name: stored_vector(v, f"{where}.{name}") for name, v in value.items()}
    raise format_error(f"{where}: data did not match any variant of untagged enum VectorStruct")


class Input:
    """A `VectorInput`: a vector, or the id of a point whose vector is used."""

    def __init__(self, vector: Any = None, pid: Any = None):
        self.vector = vector
        self.pid = pid


def vector_input(value: Any, where: str) -> Input:
    if is_int(value) or isinstance(value, str):
        return Input(pid=point_id(value, where))
    if isinstance(value, list):
        return Input(vector=_dense_or_multi(value, where))
    if isinstance(value, dict):
        if "indices" in value:
            return Input(vector=_sparse(value, where))
        if any(k in value for k in ("text", "image", "object")):
            raise RestError(400, "Bad request: Inference is not configured for this test double")
    raise format_error(f"{where}: data did not match any variant of untagged enum VectorInput")


# ---- the REST API ----------------------------------------------------------------------------


class RestApi:
    def __init__(self, store: Store):
        self.store = store

    # ---- helpers -----------------------------------------------------------------------------

    def _coll(self, name: str) -> Collection:
        try:
            return self.store.get(name)
        except NotFound:
            raise RestError(404, f"Not found: Collection `{name}` doesn't exist!") from None

    @staticmethod
    def _engine_call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RestError:
            raise
        except Exception as exc:  # what the engine raised; the server's status for it
            msg = str(exc)
            missing = re.search(r"No point with id (\S+)", msg)
            if missing:
                # The server's words, whatever the engine's: "Not found: No point with id N found".
                raise RestError(404, f"Not found: No point with id {missing.group(1)} found") from None
            if msg.startswith(("Wrong input", "Bad request", "Not found", "Service internal error")):
                status = 404 if msg.startswith("Not found") else (500 if msg.startswith("Service") else 400)
                raise RestError(status, msg) from None
            # The server's CollectionError::BadInput, which most shard errors become.
            raise RestError(400, f"Wrong input: {msg}") from None

    def _update(self, coll: Collection, ops: list[Any], wait: bool) -> dict[str, Any]:
        for op in ops:
            self._engine_call(coll.update, op)
        return {"operation_id": coll.next_operation(), "status": "completed" if wait else "acknowledged"}

    @staticmethod
    def _reader(coll: Collection) -> FilterReader:
        return FilterReader(coll.indexed)

    # ---- service -----------------------------------------------------------------------------

    def root(self) -> dict[str, Any]:
        return {"title": "qdrant - vector search engine", "version": SERVER_VERSION}

    # ---- collections -------------------------------------------------------------------------

    def list_collections(self) -> dict[str, Any]:
        return {"collections": [{"name": n} for n in self.store.names()]}

    def get_collection(self, name: str) -> dict[str, Any]:
        return render.collection_info(self._coll(name))

    def collection_exists(self, name: str) -> dict[str, Any]:
        return {"exists": name in self.store.names()}

    def create_collection(self, name: str, body: Any) -> bool:
        obj = require_object(body, "CreateCollection")
        dense: dict[str, dict[str, Any]] = {}
        vectors = obj.get("vectors")
        single = isinstance(vectors, dict) and "size" in vectors
        if vectors is None:
            pass
        elif single:
            dense[""] = self._vector_params(vectors, "vectors")
        elif isinstance(vectors, dict):
            for vname, params in vectors.items():
                dense[vname] = self._vector_params(params, f"vectors.{vname}")
        else:
            raise format_error("vectors: data did not match any variant of untagged enum VectorsConfig")
        sparse_in = obj.get("sparse_vectors") or {}
        if not isinstance(sparse_in, dict):
            raise format_error("sparse_vectors: invalid type: expected a map")
        sparse = {sname: dict(p or {}) for sname, p in sparse_in.items()}
        config = edge.EdgeConfig(
            vectors={
                vname: edge.EdgeVectorParams(size=p["size"], distance=DISTANCES[p["distance"]])
                for vname, p in dense.items()
            },
            sparse_vectors={
                sname: edge.EdgeSparseVectorParams(
                    modifier=edge.Modifier.Idf if p.get("modifier") == "idf" else None
                )
                for sname, p in sparse.items()
            },
        )
        params: dict[str, Any] = {
            "vectors": dense[""] if single else dense,
            "shard_number": 1,
            "replication_factor": 1,
            "write_consistency_factor": 1,
            "on_disk_payload": True,
        }
        if sparse:
            params["sparse_vectors"] = sparse
        try:
            self.store.create(
                name, config, params=params, single_vector=single, dense=dense, sparse=sparse,
                metadata=obj.get("metadata"),
            )
        except AlreadyExists:
            raise RestError(409, f"Wrong input: Collection `{name}` already exists!") from None
        return True

    @staticmethod
    def _vector_params(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or not is_int(value.get("size")) or "distance" not in value:
            raise format_error(f"{where}: missing field `size` or `distance`")
        if value["distance"] not in DISTANCES:
            raise format_error(f"{where}.distance: unknown variant `{value['distance']}`")
        if value["size"] < 1:
            raise validation_error(f"{where}.size", "value 0 invalid, must be in 1..=65536")
        return {"size": value["size"], "distance": value["distance"]}

    def update_collection(self, name: str, body: Any) -> bool:
        coll = self._coll(name)
        obj = require_object(body, "UpdateCollection")
        if obj.get("metadata") is not None:
            coll.metadata = {**(coll.metadata or {}), **obj["metadata"]}
        return True

    def delete_collection(self, name: str) -> bool:
        return self.store.delete(name)

    def create_index(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        obj = require_object(body, "CreateFieldIndex")
        field = check_key(obj.get("field_name"), "field_name")
        schema = obj.get("field_schema")
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if kind not in SCHEMA_TYPES:
            raise format_error("field_schema: data did not match any variant of untagged enum PayloadFieldSchema")
        result = self._update(coll, [edge.UpdateOperation.create_field_index(field, SCHEMA_TYPES[kind])], wait)
        coll.indexed[field] = kind
        return result

    def delete_index(self, name: str, field: str, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        result = self._update(coll, [edge.UpdateOperation.delete_field_index(field)], wait)
        coll.indexed.pop(field, None)
        return result

    # ---- points: writes ----------------------------------------------------------------------

    def _selector(self, coll: Collection, obj: dict[str, Any]) -> tuple[list[Any] | None, Any]:
        """`PointsSelector`: `{"points": [ids]}` or `{"filter": F}` (untagged, in that order)."""
        if obj.get("points") is not None:
            return [_edge_id(i) for i in _ids(obj["points"], "points")], None
        if "filter" in obj:
            return None, self._reader(coll).filter(obj.get("filter")) or edge.Filter()
        raise format_error("data did not match any variant of untagged enum PointsSelector")

    def _upsert_ops(self, coll: Collection, body: Any) -> list[Any]:
        obj = require_object(body, "PointInsertOperations")
        points: list[Any] = []
        if "batch" in obj:
            batch = obj["batch"]
            if not isinstance(batch, dict):
                raise format_error("batch: invalid type: expected struct Batch")
            ids = _ids(batch.get("ids"), "batch.ids")
            vectors = batch.get("vectors")
            payloads = batch.get("payloads") or [None] * len(ids)
            if isinstance(vectors, list):
                per_point = [point_vectors(v, f"batch.vectors[{i}]") for i, v in enumerate(vectors)]
            elif isinstance(vectors, dict):
                per_point = [
                    {n: stored_vector(vs[i], f"batch.vectors.{n}[{i}]") for n, vs in vectors.items()}
                    for i in range(len(ids))
                ]
            else:
                raise format_error("batch.vectors: invalid type")
            if len(per_point) != len(ids) or len(payloads) != len(ids):
                raise RestError(400, "Wrong input: number of ids, vectors and payloads must be the same")
            for pid, vec, payload in zip(ids, per_point, payloads):
                points.append(edge.Point(_edge_id(pid), vec, payload))
        elif isinstance(obj.get("points"), list):
            for i, p in enumerate(obj["points"]):
                if not isinstance(p, dict) or "id" not in p:
                    raise format_error(f"points[{i}]: missing field `id`")
                vec = point_vectors(p.get("vector", {}), f"points[{i}].vector")
                payload = p.get("payload")
                if payload is not None and not isinstance(payload, dict):
                    raise format_error(f"points[{i}].payload: invalid type: expected a map")
                points.append(edge.Point(_edge_id(point_id(p["id"], f"points[{i}].id")), vec, payload))
        else:
            raise format_error("data did not match any variant of untagged enum PointInsertOperations")
        condition = self._reader(coll).filter(obj.get("update_filter"), "update_filter")
        mode = obj.get("update_mode")
        if mode is not None and mode not in UPDATE_MODES:
            raise format_error(f"update_mode: unknown variant `{mode}`")
        return [edge.UpdateOperation.upsert_points(points, condition, UPDATE_MODES.get(mode))]

    def upsert(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._upsert_ops(coll, body), wait)

    def _delete_ops(self, coll: Collection, body: Any) -> list[Any]:
        ids, flt = self._selector(coll, require_object(body, "PointsSelector"))
        if ids is not None:
            return [edge.UpdateOperation.delete_points(ids)]
        return [edge.UpdateOperation.delete_points_by_filter(flt)]

    def delete_points(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._delete_ops(coll, body), wait)

    def _set_payload_ops(self, coll: Collection, body: Any, overwrite: bool) -> list[Any]:
        obj = require_object(body, "SetPayload")
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            raise format_error("missing field `payload`")
        key = obj.get("key")
        if key is not None:
            check_key(key, "key")
        ids, flt = self._selector(coll, obj)
        op = edge.UpdateOperation
        if ids is not None:
            fn = op.overwrite_payload if overwrite else op.set_payload
            return [fn(ids, payload, key)]
        fn = op.overwrite_payload_by_filter if overwrite else op.set_payload_by_filter
        return [fn(flt, payload, key)]

    def set_payload(self, name: str, body: Any, wait: bool, overwrite: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._set_payload_ops(coll, body, overwrite), wait)

    def _delete_payload_ops(self, coll: Collection, body: Any) -> list[Any]:
        obj = require_object(body, "DeletePayload")
        keys = obj.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise format_error("missing field `keys`")
        keys = [check_key(k, "keys") for k in keys]
        ids, flt = self._selector(coll, obj)
        if ids is not None:
            return [edge.UpdateOperation.delete_payload(ids, keys)]
        return [edge.UpdateOperation.delete_payload_by_filter(flt, keys)]

    def delete_payload(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._delete_payload_ops(coll, body), wait)

    def _clear_payload_ops(self, coll: Collection, body: Any) -> list[Any]:
        ids, flt = self._selector(coll, require_object(body, "PointsSelector"))
        if ids is not None:
            return [edge.UpdateOperation.clear_payload(ids)]
        return [edge.UpdateOperation.clear_payload_by_filter(flt)]

    def clear_payload(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._clear_payload_ops(coll, body), wait)

    def _update_vectors_ops(self, coll: Collection, body: Any) -> list[Any]:
        obj = require_object(body, "UpdateVectors")
        items = obj.get("points")
        if not isinstance(items, list):
            raise format_error("missing field `points`")
        pvs = []
        for i, p in enumerate(items):
            if not isinstance(p, dict) or "id" not in p or "vector" not in p:
                raise format_error(f"points[{i}]: missing field `id` or `vector`")
            pid = _edge_id(point_id(p["id"], f"points[{i}].id"))
            pvs.append(edge.PointVectors(pid, point_vectors(p["vector"], f"points[{i}].vector")))
        condition = self._reader(coll).filter(obj.get("update_filter"), "update_filter")
        return [edge.UpdateOperation.update_vectors(pvs, condition)]

    def update_vectors(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._update_vectors_ops(coll, body), wait)

    def _delete_vectors_ops(self, coll: Collection, body: Any) -> list[Any]:
        obj = require_object(body, "DeleteVectors")
        names = obj.get("vector")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise format_error("missing field `vector`")
        ids, flt = self._selector(coll, obj)
        if ids is not None:
            return [edge.UpdateOperation.delete_vectors(ids, names)]
        return [edge.UpdateOperation.delete_vectors_by_filter(flt, names)]

    def delete_vectors(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        coll = self._coll(name)
        return self._update(coll, self._delete_vectors_ops(coll, body), wait)

    def batch(self, name: str, body: Any, wait: bool) -> list[dict[str, Any]]:
        coll = self._coll(name)
        obj = require_object(body, "UpdateOperations")
        ops = obj.get("operations")
        if not isinstance(ops, list):
            raise format_error("missing field `operations`")
        readers: dict[str, Callable[[Any], list[Any]]] = {
            "upsert": lambda b: self._upsert_ops(coll, b),
            "delete": lambda b: self._delete_ops(coll, b),
            "set_payload": lambda b: self._set_payload_ops(coll, b, False),
            "overwrite_payload": lambda b: self._set_payload_ops(coll, b, True),
            "delete_payload": lambda b: self._delete_payload_ops(coll, b),
            "clear_payload": lambda b: self._clear_payload_ops(coll, b),
            "update_vectors": lambda b: self._update_vectors_ops(coll, b),
            "delete_vectors": lambda b: self._delete_vectors_ops(coll, b),
        }
        parsed = []
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in readers:
                raise format_error(f"operations[{i}]: unknown variant, expected one of {', '.join(readers)}")
            kind, inner = next(iter(op.items()))
            parsed.append(readers[kind](inner))
        return [self._update(coll, p, wait) for p in parsed]

    # ---- points: reads by id -----------------------------------------------------------------

    def retrieve(self, name: str, body: Any) -> list[dict[str, Any]]:
        coll = self._coll(name)
        obj = require_object(body, "PointRequest")
        ids = [_edge_id(i) for i in _ids(obj.get("ids"), "ids")]
        # PointRequestInternal says "Default is true", but Collection::retrieve reads an absent
        # with_payload as false (v1.18.3, lib/collection/src/collection/point_ops.rs); the
        # server answers `[{"id": 1}]`.
        records = self._engine_call(
            coll.shard.retrieve, ids,
            with_payload(obj.get("with_payload"), False, "with_payload"),
            with_vector(obj.get("with_vector"), False, "with_vector"),
        )
        return [render.record(coll, r) for r in records]

    def get_point(self, name: str, raw_id: str) -> dict[str, Any]:
        coll = self._coll(name)
        pid: Any
        if raw_id.isdigit():
            pid = int(raw_id)
        else:
            try:
                pid = uuid.UUID(raw_id)
            except ValueError:
                raise RestError(400, f'Wrong input: Can not recognize "{raw_id}" as point id') from None
        records = self._engine_call(coll.shard.retrieve, [pid], True, True)
        if not records:
            raise RestError(404, f"Not found: Point with id {render.point_id(pid)} does not exists!")
        return render.record(coll, records[0])

    # ---- points: filtered reads --------------------------------------------------------------

    def scroll(self, name: str, body: Any) -> dict[str, Any]:
        coll = self._coll(name)
        obj = require_object(body, "ScrollRequest")
        order_by = obj.get("order_by")
        req = edge.ScrollRequest(
            offset=None if obj.get("offset") is None else _edge_id(point_id(obj["offset"], "offset")),
            limit=_limit(obj, ""),
            filter=self._reader(coll).filter(obj.get("filter")),
            with_payload=with_payload(obj.get("with_payload"), True, "with_payload"),
            with_vector=with_vector(obj.get("with_vector"), False, "with_vector"),
            order_by=None if order_by is None else _order_by(order_by, "order_by"),
        )
        records, next_offset = self._engine_call(coll.shard.scroll, req)
        return {
            "points": [render.record(coll, r) for r in records],
            "next_page_offset": None if next_offset is None else render.point_id(next_offset),
        }

    def count(self, name: str, body: Any) -> dict[str, Any]:
        coll = self._coll(name)
        obj = require_object(body, "CountRequest")
        req = edge.CountRequest(
            exact=_bool(obj, "exact", True, ""), filter=self._reader(coll).filter(obj.get("filter"))
        )
        return {"count": self._engine_call(coll.shard.count, req)}

    def facet(self, name: str, body: Any) -> dict[str, Any]:
        coll = self._coll(name)
        obj = require_object(body, "FacetRequest")
        req = edge.FacetRequest(
            key=check_key(obj.get("key"), "key"),
            limit=_limit(obj, ""),
            exact=_bool(obj, "exact", False, ""),
            filter=self._reader(coll).filter(obj.get("filter")),
        )
        hits = self._engine_call(coll.shard.facet, req)
        return {"hits": [{"value": h.value, "count": h.count} for h in hits]}

    # ---- query -------------------------------------------------------------------------------

    def query(self, name: str, body: Any) -> dict[str, Any]:
        coll = self._coll(name)
        req = QueryReader(self, coll).request(require_object(body, "QueryRequest"), "")
        return {"points": self._run_query(coll, req)}

    def _run_query(self, coll: Collection, req: edge.QueryRequest) -> list[dict[str, Any]]:
        return [render.scored(coll, p) for p in self._engine_call(coll.shard.query, req)]

    def query_batch(self, name: str, body: Any) -> list[dict[str, Any]]:
        coll = self._coll(name)
        searches = require_object(body, "QueryRequestBatch").get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        reqs = [
            QueryReader(self, coll).request(require_object(s, "QueryRequest"), f"searches[{i}].")
            for i, s in enumerate(searches)
        ]
        return [{"points": self._run_query(coll, r)} for r in reqs]

    def query_groups(self, name: str, body: Any) -> dict[str, Any]:
        coll = self._coll(name)
        return self._groups(coll, require_object(body, "QueryGroupsRequest"))

    def _groups(self, coll: Collection, obj: dict[str, Any]) -> dict[str, Any]:
        """`lib/collection/src/grouping` (v1.18.3), ported: up to 5 rounds that query
        `groups * group_size` points excluding the full groups (`match.except` on their keys)
        and the points already taken, then up to 5 rounds that fill the best unfilled groups
        (`match.any`); a point whose group value holds anything but strings and integers is
        skipped; the hits are enriched with the payload and vectors asked for at the end."""
        group_by = check_key(obj.get("group_by"), "group_by")
        groups = _limit(obj, "")
        group_size = _uint(obj, "group_size", 3, "") or 3
        if "group_size" in obj and obj["group_size"] == 0:
            raise validation_error("group_size", "value 0 invalid, must be 1 or larger")
        payload_sel = with_payload(obj.get("with_payload"), False, "with_payload")
        vector_sel = with_vector(obj.get("with_vector"), False, "with_vector")
        reader = QueryReader(self, coll)
        order = reader.order_of(obj)
        agg = _GroupsAggregator(groups, group_size, group_by, order)
        key_not_empty = edge.Filter(must_not=[edge.IsEmptyCondition(group_by)])

        def run(extra: list[Any]) -> list[Any]:
            req = reader.request(
                obj, "", extra=[key_not_empty] + extra, limit=groups * group_size,
                prefetch_factor=group_size, payload=[group_by], vector=False,
            )
            return self._engine_call(coll.shard.query, req)

        needs_filling = True
        for _ in range(5):
            extra = _group_conditions(group_by, agg.full_keys(), edge.MatchExcept)
            if agg.all_ids:
                extra.append(edge.Filter(must_not=[edge.HasIdCondition(set(agg.all_ids))]))
            points = run(extra)
            if not points:
                break
            agg.add_points(points)
            if agg.filled_best() >= groups:
                needs_filling = False
                break
        if needs_filling:
            for _ in range(5):
                extra = _group_conditions(group_by, agg.unfilled_best_keys(), edge.MatchAny)
                if agg.all_ids:
                    extra.append(edge.Filter(must_not=[edge.HasIdCondition(set(agg.all_ids))]))
                points = run(extra)
                if not points:
                    break
                agg.add_points(points)
                if agg.filled_best() >= groups:
                    break
        distilled = agg.distill()
        wanted = [h.id for _, hits in distilled for h in hits]
        shown = {
            r.id: r for r in self._engine_call(coll.shard.retrieve, wanted, payload_sel, vector_sel)
        } if wanted else {}
        out = []
        for key, hits in distilled:
            group: dict[str, Any] = {"hits": [], "id": key}
            for h in hits:
                hit = {"id": render.point_id(h.id), "version": h.version + 1, "score": render.f32(h.score)}
                rec = shown.get(h.id)
                if rec is not None and rec.payload is not None:
                    hit["payload"] = rec.payload
                if rec is not None and rec.vector is not None:
                    hit["vector"] = render.vector(coll, rec.vector)
                if h.order_value is not None:
                    hit["order_value"] = h.order_value
                group["hits"].append(hit)
            out.append(group)
        if obj.get("with_lookup") is not None:
            self._add_lookups(out, obj["with_lookup"])
        return {"groups": out}

    def _add_lookups(self, groups: list[dict[str, Any]], lookup: Any) -> None:
        if isinstance(lookup, str):
            lookup = {"collection": lookup}
        if not isinstance(lookup, dict) or not isinstance(lookup.get("collection"), str):
            raise format_error("with_lookup: data did not match any variant of untagged enum WithLookupInterface")
        other = self._coll(lookup["collection"])
        payload_sel = with_payload(lookup.get("with_payload"), True, "with_lookup.with_payload")
        vector_sel = with_vector(lookup.get("with_vectors"), False, "with_lookup.with_vectors")
        for group in groups:
            gid = group["id"]
            try:
                pid = _edge_id(point_id(gid, "group id"))
            except RestError:
                continue
            found = self._engine_call(other.shard.retrieve, [pid], payload_sel, vector_sel)
            if found:
                group["lookup"] = render.record(other, found[0])

    def matrix(self, name: str, body: Any, kind: str) -> dict[str, Any]:
        """`search/matrix/*`: the sampled points and each one's nearest among them."""
        coll = self._coll(name)
        obj = require_object(body, "SearchMatrixRequest")
        sample = _uint(obj, "sample", 10, "") or 10
        limit = _uint(obj, "limit", 3, "") or 3
        using = obj.get("using") or ""
        base = self._reader(coll).filter(obj.get("filter"))
        with_vec = edge.Filter(must=[edge.HasVectorCondition(using)] + ([base] if base else []))
        records, _ = self._engine_call(
            coll.shard.scroll, edge.ScrollRequest(limit=sample, filter=with_vec, with_payload=False, with_vector=[using])
        )
        ids = [r.id for r in records]
        vectors = {r.id: r.vector[using] if isinstance(r.vector, dict) else r.vector for r in records}
        rows: list[list[Any]] = []
        for pid in ids:
            among = edge.Filter(must=[edge.HasIdCondition(set(ids))], must_not=[edge.HasIdCondition({pid})])
            req = edge.QueryRequest(limit=limit, query=edge.Query.Nearest(vectors[pid], using), filter=among)
            rows.append(self._engine_call(coll.shard.query, req))
        if kind == "pairs":
            return {"pairs": [
                {"a": render.point_id(pid), "b": render.point_id(h.id), "score": render.f32(h.score)}
                for pid, hits in zip(ids, rows) for h in hits
            ]}
        position = {pid: i for i, pid in enumerate(ids)}
        return {
            "offsets_row": [i for i, hits in enumerate(rows) for _ in hits],
            "offsets_col": [position[h.id] for hits in rows for h in hits],
            "scores": [render.f32(h.score) for hits in rows for h in hits],
            "ids": [render.point_id(pid) for pid in ids],
        }

    # ---- legacy (v1.18 OpenAPI): search, recommend, discover ---------------------------------

    def _legacy_request(self, coll: Collection, obj: Any, where: str, kind: str) -> edge.QueryRequest:
        obj = require_object(obj, f"{kind.capitalize()}Request")
        return QueryReader(self, coll).request(self._legacy_query(obj, where, kind), where)

    @staticmethod
    def _legacy_query(obj: dict[str, Any], where: str, kind: str, needs_limit: bool = True) -> dict[str, Any]:
        """A v1.18 search/recommend/discover body as the equivalent `query` body."""
        if needs_limit and "limit" not in obj:
            raise format_error(f"{where}missing field `limit`")
        common = {k: obj.get(k) for k in (
            "filter", "params", "limit", "offset", "with_payload", "with_vector", "score_threshold",
        )}
        if kind == "search":
            vector = obj.get("vector")
            using = None
            if isinstance(vector, dict) and "name" in vector:
                using = vector["name"]
                vector = vector.get("vector")
            common.update(query={"nearest": vector}, using=using)
        elif kind == "recommend":
            rec = {"positive": obj.get("positive") or [], "negative": obj.get("negative") or []}
            if obj.get("strategy") is not None:
                rec["strategy"] = obj["strategy"]
            common.update(query={"recommend": rec}, using=obj.get("using"), lookup_from=obj.get("lookup_from"))
        else:
            context = obj.get("context") or []
            if obj.get("target") is None:
                common.update(query={"context": context})
            else:
                common.update(query={"discover": {"target": obj["target"], "context": context}})
            common.update(using=obj.get("using"), lookup_from=obj.get("lookup_from"))
        return {k: v for k, v in common.items() if v is not None}

    def legacy_groups(self, name: str, body: Any, kind: str) -> dict[str, Any]:
        """`search/groups` and `recommend/groups` (v1.18): the legacy request, grouped."""
        coll = self._coll(name)
        obj = require_object(body, f"{kind.capitalize()}GroupsRequest")
        query = self._legacy_query(obj, "", kind, needs_limit=False)
        for field in ("group_by", "group_size", "with_lookup"):
            if field in obj:
                query[field] = obj[field]
        if "group_by" not in obj:
            raise format_error("missing field `group_by`")
        return self._groups(coll, query)

    def legacy(self, name: str, body: Any, kind: str) -> list[dict[str, Any]]:
        coll = self._coll(name)
        return self._run_query(coll, self._legacy_request(coll, body, "", kind))

    def legacy_batch(self, name: str, body: Any, kind: str) -> list[list[dict[str, Any]]]:
        coll = self._coll(name)
        searches = require_object(body, f"{kind.capitalize()}RequestBatch").get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        reqs = [self._legacy_request(coll, s, f"searches[{i}].", kind) for i, s in enumerate(searches)]
        return [self._run_query(coll, r) for r in reqs]


def _payload_values(payload: Any, key: str) -> list[Any]:
    """The values at a dotted key (`a.b`, `a[].b`), arrays flattened one level."""
    values = [payload]
    for part in key.split("."):
        is_array = part.endswith("[]")
        name = part[:-2] if is_array else part
        nxt = []
        for v in values:
            if isinstance(v, dict) and name in v:
                found = v[name]
                if is_array:
                    nxt.extend(found if isinstance(found, list) else [])
                else:
                    nxt.append(found)
        values = nxt
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _group_conditions(key: str, values: list[Any], match: Callable[[Any], Any]) -> list[Any]:
    """`except_on` / `match_on`: one condition for the integer keys, one for the strings."""
    ints = list(dict.fromkeys(v for v in values if is_int(v)))
    strs = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return [edge.FieldCondition(key, match=match(vs)) for vs in (ints, strs) if vs]


class _GroupsAggregator:
    """`lib/collection/src/grouping/aggregator.rs` (v1.18.3)."""

    def __init__(self, groups: int, group_size: int, key: str, order: str | None):
        self.max_groups = groups
        self.max_size = group_size
        self.key = key
        self.order = order
        self.groups: dict[Any, dict[Any, Any]] = {}
        self.full: set[Any] = set()
        self.best: dict[Any, Any] = {}
        self.all_ids: set[Any] = set()

    def _better(self, a: Any, b: Any) -> bool:
        if self.order == "large":
            return a.score > b.score
        if self.order == "small":
            return a.score < b.score
        return False

    def add_points(self, points: list[Any]) -> None:
        for p in points:
            values = _payload_values(p.payload or {}, self.key)
            # GroupId: strings and integers only; anything else skips the whole point.
            if not values or not all(isinstance(v, str) or is_int(v) for v in values):
                continue
            for k in dict.fromkeys(values):
                group = self.groups.setdefault(k, {})
                old = group.get(p.id)
                if old is None:
                    group[p.id] = p
                    self.all_ids.add(p.id)
                elif old.version < p.version:
                    group[p.id] = p
                if len(group) == self.max_size:
                    self.full.add(k)
                if k not in self.best or self._better(p, self.best[k]):
                    self.best[k] = p

    def best_keys(self) -> list[Any]:
        keys = list(self.best)
        if self.order is not None:
            keys.sort(key=lambda k: self.best[k].score, reverse=self.order == "large")
        return keys[: self.max_groups]

    def full_keys(self) -> list[Any]:
        return list(self.full)

    def unfilled_best_keys(self) -> list[Any]:
        return [k for k in self.best_keys() if k not in self.full]

    def filled_best(self) -> int:
        return sum(1 for k in self.best_keys() if k in self.full)

    def distill(self) -> list[tuple[Any, list[Any]]]:
        out = []
        for k in self.best_keys():
            hits = list(self.groups[k].values())
            if self.order is not None:
                hits.sort(key=lambda h: h.score, reverse=self.order == "large")
            out.append((k, hits[: self.max_size]))
        return out


def _order_by(value: Any, where: str) -> edge.OrderBy:
    if isinstance(value, str):
        return edge.OrderBy(check_key(value, where))
    if not isinstance(value, dict) or "key" not in value:
        raise format_error(f"{where}: data did not match any variant of untagged enum OrderByInterface")
    direction = value.get("direction")
    if direction not in (None, "asc", "desc"):
        raise format_error(f"{where}.direction: unknown variant `{direction}`")
    start = value.get("start_from")
    return edge.OrderBy(
        check_key(value["key"], f"{where}.key"),
        None if direction is None else (edge.Direction.Asc if direction == "asc" else edge.Direction.Desc),
        start,
    )


class QueryReader:
    """Reads one `QueryRequest` (and its prefetches) into an Edge request, resolving point ids
    used as inputs the way the server's collection layer does."""

    def __init__(self, api: RestApi, coll: Collection):
        self.api = api
        self.coll = coll
        self.filters = FilterReader(coll.indexed)

    def request(
        self, obj: dict[str, Any], where: str, *, extra: list[Any] | None = None,
        limit: int | None = None, prefetch_factor: int = 1, payload: Any = None, vector: Any = None,
    ) -> edge.QueryRequest:
        """The Edge request for a `QueryRequest` body. The keyword arguments are what the
        grouping rounds change: extra conditions ANDed into the filter, the limit, a factor on
        every prefetch's limit, and the payload and vectors returned."""
        lookup = self._lookup(obj.get("lookup_from"), where)
        query, excluded = self._query(obj.get("query"), obj.get("using"), lookup, where)
        flt = self._with_exclusion(self.filters.filter(obj.get("filter"), f"{where}filter"), excluded)
        if extra:
            flt = edge.Filter(must=([flt] if flt is not None else []) + extra)
        prefetches = self._prefetches(obj.get("prefetch"), lookup, f"{where}prefetch", prefetch_factor)
        if prefetches and query is None:
            raise RestError(400, "Bad request: A query is needed to merge the prefetches. "
                                 "Can't have prefetches without defining a query.")
        return edge.QueryRequest(
            limit=_limit(obj, where) if limit is None else limit,
            offset=_uint(obj, "offset", 0, where),
            query=query,
            prefetches=prefetches,
            with_vector=with_vector(obj.get("with_vector"), False, f"{where}with_vector") if vector is None else vector,
            with_payload=with_payload(obj.get("with_payload"), False, f"{where}with_payload") if payload is None else payload,
            filter=flt,
            score_threshold=obj.get("score_threshold"),
            params=_params(obj.get("params"), f"{where}params"),
        )

    def order_of(self, obj: dict[str, Any]) -> str | None:
        """Which scores are better, as `query_result_order`: larger, smaller, or none
        (random sampling)."""
        query = obj.get("query")
        if isinstance(query, dict) and "sample" in query:
            return None
        if isinstance(query, dict) and "order_by" in query:
            ob = query["order_by"]
            return "large" if isinstance(ob, dict) and ob.get("direction") == "desc" else "small"
        using = obj.get("using") or ""
        distance = self.coll.dense.get(using, {}).get("distance")
        if distance in ("Euclid", "Manhattan") and not (isinstance(query, dict) and ("fusion" in query or "rrf" in query)):
            return "small"
        return "large"

    def _prefetches(self, value: Any, lookup: Any, where: str, factor: int = 1) -> list[edge.Prefetch] | None:
        items = value if isinstance(value, list) else ([] if value is None else [value])
        out = []
        for i, item in enumerate(items):
            w = f"{where}[{i}]."
            if not isinstance(item, dict):
                raise format_error(f"{w}: invalid type: expected struct Prefetch")
            own_lookup = self._lookup(item.get("lookup_from"), w) if "lookup_from" in item else lookup
            query, excluded = self._query(item.get("query"), item.get("using"), own_lookup, w)
            out.append(edge.Prefetch(
                limit=_limit(item, w) * factor,
                query=query,
                prefetches=self._prefetches(item.get("prefetch"), own_lookup, f"{w}prefetch", factor),
                params=_params(item.get("params"), f"{w}params"),
                filter=self._with_exclusion(self.filters.filter(item.get("filter"), f"{w}filter"), excluded),
                score_threshold=item.get("score_threshold"),
            ))
        return out or None

    @staticmethod
    def _with_exclusion(flt: Any, excluded: set[Any]) -> Any:
        if not excluded:
            return flt
        exclude = edge.Filter(must_not=[edge.HasIdCondition(excluded)])
        return exclude if flt is None else edge.Filter(must=[flt, exclude])

    def _lookup(self, value: Any, where: str) -> tuple[Collection, str | None] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("collection"), str):
            raise format_error(f"{where}lookup_from: missing field `collection`")
        return self.api._coll(value["collection"]), value.get("vector")

    def _resolve(self, inp: Input, using: str, lookup: Any, excluded: set[Any]) -> Any:
        if inp.pid is None:
            return inp.vector
        coll, name = (self.coll, using) if lookup is None else (lookup[0], lookup[1] or using)
        pid = _edge_id(inp.pid)
        found = self.api._engine_call(coll.shard.retrieve, [pid], False, [name])
        if not found:
            raise RestError(404, f"Not found: No point with id {inp.pid} found")
        vec = found[0].vector
        vec = vec.get(name) if isinstance(vec, dict) else vec
        if vec is None:
            raise RestError(400, f"Wrong input: Vector `{name}` is not found in point {inp.pid}")
        if lookup is None:
            excluded.add(pid)
        return vec

    def _query(self, value: Any, using: Any, lookup: Any, where: str) -> tuple[Any, set[Any]]:
        """`QueryInterface` -> an Edge scoring query, and the point ids to exclude."""
        excluded: set[Any] = set()
        if using is not None and not isinstance(using, str):
            raise format_error(f"{where}using: invalid type: expected a string")
        name = using or ""
        w = f"{where}query"
        if value is None:
            return None, excluded
        if not isinstance(value, dict) or "indices" in value:
            vec = self._resolve(vector_input(value, w), name, lookup, excluded)
            return edge.Query.Nearest(vec, name), excluded
        if "nearest" in value:
            vec = self._resolve(vector_input(value["nearest"], f"{w}.nearest"), name, lookup, excluded)
            mmr = value.get("mmr")
            if mmr is None:
                return edge.Query.Nearest(vec, name), excluded
            if not isinstance(mmr, dict):
                raise format_error(f"{w}.mmr: invalid type: expected struct Mmr")
            diversity = mmr.get("diversity", 0.5)
            candidates = mmr.get("candidates_limit", DEFAULT_LIMIT)
            return edge.Mmr(vec, 1.0 - float(diversity), candidates, name), excluded
        if "recommend" in value:
            rec = value["recommend"]
            if not isinstance(rec, dict):
                raise format_error(f"{w}.recommend: invalid type: expected struct RecommendInput")
            pos = [self._resolve(vector_input(v, f"{w}.recommend.positive"), name, lookup, excluded)
                   for v in rec.get("positive") or []]
            neg = [self._resolve(vector_input(v, f"{w}.recommend.negative"), name, lookup, excluded)
                   for v in rec.get("negative") or []]
            strategy = rec.get("strategy") or "average_vector"
            if strategy == "average_vector":
                return edge.Query.Nearest(_average(pos, neg), name), excluded
            if strategy == "best_score":
                return edge.Query.RecommendBestScore(edge.RecommendQuery(pos, neg), name), excluded
            if strategy == "sum_scores":
                return edge.Query.RecommendSumScores(edge.RecommendQuery(pos, neg), name), excluded
            raise format_error(f"{w}.recommend.strategy: unknown variant `{strategy}`")
        if "discover" in value:
            disc = value["discover"]
            if not isinstance(disc, dict) or "target" not in disc:
                raise format_error(f"{w}.discover: missing field `target`")
            target = self._resolve(vector_input(disc["target"], f"{w}.discover.target"), name, lookup, excluded)
            pairs = self._pairs(disc.get("context"), name, lookup, excluded, f"{w}.discover.context")
            return edge.Query.Discover(edge.DiscoverQuery(target, pairs), name), excluded
        if "context" in value:
            pairs = self._pairs(value["context"], name, lookup, excluded, f"{w}.context")
            return edge.Query.Context(edge.ContextQuery(pairs), name), excluded
        if "order_by" in value:
            return _order_by(value["order_by"], f"{w}.order_by"), excluded
        if "fusion" in value:
            if value["fusion"] == "rrf":
                return edge.Fusion.Rrf(k=DEFAULT_RRF_K), excluded
            if value["fusion"] == "dbsf":
                return edge.Fusion.Dbsf(), excluded
            raise format_error(f"{w}.fusion: unknown variant `{value['fusion']}`")
        if "rrf" in value:
            rrf = value["rrf"] or {}
            k = rrf.get("k", DEFAULT_RRF_K) if isinstance(rrf, dict) else DEFAULT_RRF_K
            return edge.Fusion.Rrf(k=k, weights=rrf.get("weights") if isinstance(rrf, dict) else None), excluded
        if "sample" in value:
            if value["sample"] != "random":
                raise format_error(f"{w}.sample: unknown variant `{value['sample']}`")
            return edge.Sample.Random, excluded
        if "formula" in value or "relevance_feedback" in value:
            raise RestError(400, "Bad request: formula and relevance_feedback queries are not supported by the test double")
        raise format_error(f"{w}: data did not match any variant of untagged enum QueryInterface")

    def _pairs(self, value: Any, name: str, lookup: Any, excluded: set[Any], where: str) -> list[Any]:
        items = value if isinstance(value, list) else ([] if value is None else [value])
        out = []
        for i, pair in enumerate(items):
            if not isinstance(pair, dict) or "positive" not in pair or "negative" not in pair:
                raise format_error(f"{where}[{i}]: missing field `positive` or `negative`")
            out.append(edge.ContextPair(
                self._resolve(vector_input(pair["positive"], f"{where}[{i}].positive"), name, lookup, excluded),
                self._resolve(vector_input(pair["negative"], f"{where}[{i}].negative"), name, lookup, excluded),
            ))
        return out


def _average(pos: list[Any], neg: list[Any]) -> Any:
    """`avg_vector_for_recommendation` for dense vectors: avg(+) + (avg(+) - avg(-))."""
    def avg(vs: list[Any]) -> list[float]:
        if not vs or not all(isinstance(v, list) and v and is_number(v[0]) for v in vs):
            raise RestError(400, "Wrong input: Positive vectors should not be empty with `average` strategy")
        return [sum(col) / len(vs) for col in zip(*vs)]

    p = avg(pos)
    if not neg:
        return p
    n = avg(neg)
    return [a + a - b for a, b in zip(p, n)]


def _params(value: Any, where: str) -> edge.SearchParams | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct SearchParams")
    return edge.SearchParams(
        hnsw_ef=value.get("hnsw_ef"),
        exact=bool(value.get("exact", False)),
        indexed_only=bool(value.get("indexed_only", False)),
    )
