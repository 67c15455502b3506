"""Qdrant REST routes answered by qdrant-client's local mode (`QdrantClient(":memory:")`).

Each handler takes the decoded JSON body (or None) and returns the `result` value of Qdrant's
envelope, or raises RestError. Request JSON is cleaned the way the server's serde types read it
(unknown request fields ignored, filters strict; see rest_filter.py), converted into
qdrant_client.models, passed to the local client, and the answer is written back in the
server's REST shapes.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any, Callable

from qdrant_client import QdrantClient, models

from rest_filter import INDEXED, RestError, format_error, parse_filter, validation_error

SERVER_VERSION = "1.19.0"

# ---------------------------------------------------------------------------------------------
# request cleaning


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in lines[:3])


def _require_object(body: Any, what: str) -> dict[str, Any]:
    if body is None:
        raise format_error("EOF while parsing a value at line 1 column 0")
    if not isinstance(body, dict):
        raise format_error(f"invalid type: expected struct {what}")
    return body


def _known(body: dict[str, Any], fields: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Keeps the fields the server's type knows; serde ignores the others."""
    return {k: v for k, v in body.items() if k in fields}


def _validate(model: type, data: Any, where: str = "") -> Any:
    try:
        return model.model_validate(data)
    except RestError:
        raise
    except Exception as exc:  # pydantic.ValidationError
        prefix = f"{where}: " if where else ""
        raise format_error(prefix + _first_line(exc)) from None


def _clean_prefetch(value: Any, where: str) -> Any:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise format_error(f"{where}[{i}]: invalid type: expected struct Prefetch")
        cleaned = _known(item, list(models.Prefetch.model_fields))
        cleaned["filter"] = parse_filter(item.get("filter"), f"{where}[{i}].filter")
        cleaned["prefetch"] = _clean_prefetch(item.get("prefetch"), f"{where}[{i}].prefetch")
        _check_limit(cleaned, f"{where}[{i}]")
        out.append(_validate(models.Prefetch, cleaned, f"{where}[{i}]"))
    return out


def _check_limit(body: dict[str, Any], where: str) -> None:
    limit = body.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit == 0:
        raise validation_error(f"{where}.limit" if where else "limit", "value 0 invalid, must be 1 or larger")


def _request(body: Any, model: type, *, filter_field: str | None = "filter", where: str = "") -> Any:
    obj = _require_object(body, model.__name__)
    cleaned = _known(obj, list(model.model_fields))
    if filter_field and filter_field in model.model_fields:
        cleaned[filter_field] = parse_filter(
            obj.get(filter_field), f"{where}.{filter_field}" if where else filter_field
        )
    if "prefetch" in model.model_fields:
        cleaned["prefetch"] = _clean_prefetch(obj.get("prefetch"), f"{where}.prefetch" if where else "prefetch")
    _check_limit(cleaned, where)
    return _validate(model, cleaned, where)


# ---------------------------------------------------------------------------------------------
# response rendering


def _point_id(pid: Any) -> Any:
    return str(pid) if isinstance(pid, uuid.UUID) else pid


def _vector(vec: Any) -> Any:
    if isinstance(vec, dict):
        return {name: _vector(v) for name, v in vec.items()}
    if isinstance(vec, models.SparseVector):
        return {"indices": list(vec.indices), "values": list(vec.values)}
    if hasattr(vec, "tolist"):
        return vec.tolist()
    return vec


def _order_value(value: Any) -> Any:
    return value


class Engine:
    """All state of one test server: the local client, versions and seen payload indexes."""

    def __init__(self) -> None:
        self.client = QdrantClient(location=":memory:")
        self.lock = threading.RLock()
        self.op_counter: dict[str, int] = {}
        self.versions: dict[str, dict[Any, int]] = {}
        self.indexes: dict[str, dict[str, Any]] = {}

    # ---- helpers ------------------------------------------------------------------------

    def _collection(self, name: str) -> None:
        if not self.client.collection_exists(name):
            raise RestError(404, f"Not found: Collection `{name}` doesn't exist!")
        INDEXED.set(dict(self.indexes.get(name, {})))

    def _local_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RestError:
            raise
        except ValueError as exc:
            raise _translate_value_error(exc) from None
        except (KeyError, TypeError, AssertionError, IndexError) as exc:
            raise RestError(400, f"Wrong input: {exc}") from None

    def _version(self, collection: str, pid: Any) -> int:
        return self.versions.get(collection, {}).get(_point_id(pid), 0)

    def _scored(self, collection: str, p: models.ScoredPoint) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": _point_id(p.id),
            "version": self._version(collection, p.id),
            "score": p.score,
        }
        if p.payload is not None:
            out["payload"] = p.payload
        if p.vector is not None:
            out["vector"] = _vector(p.vector)
        if p.shard_key is not None:
            out["shard_key"] = p.shard_key
        if p.order_value is not None:
            out["order_value"] = _order_value(p.order_value)
        return out

    def _record(self, r: models.Record) -> dict[str, Any]:
        out: dict[str, Any] = {"id": _point_id(r.id)}
        if r.payload is not None:
            out["payload"] = r.payload
        if r.vector is not None:
            out["vector"] = _vector(r.vector)
        if r.shard_key is not None:
            out["shard_key"] = r.shard_key
        if r.order_value is not None:
            out["order_value"] = _order_value(r.order_value)
        return out

    def _bump(self, collection: str, ids: list[Any]) -> int:
        op = self.op_counter.get(collection, 0) + 1
        self.op_counter[collection] = op
        versions = self.versions.setdefault(collection, {})
        for pid in ids:
            versions[_point_id(pid)] = op
        return op

    def _ids_matching(self, collection: str, flt: models.Filter | None) -> list[Any]:
        records, _ = self.client.scroll(
            collection, scroll_filter=flt, limit=10**9, with_payload=False
        )
        return [r.id for r in records]

    def _selector_ids(self, collection: str, points: Any, flt: Any) -> list[Any]:
        if points is not None:
            return list(points)
        return self._ids_matching(collection, flt)

    @staticmethod
    def _update_result(op: int, wait: bool) -> dict[str, Any]:
        return {"operation_id": op, "status": "completed" if wait else "acknowledged"}

    # ---- service ------------------------------------------------------------------------

    def root(self) -> dict[str, Any]:
        return {"title": "qdrant - vector search engine", "version": SERVER_VERSION, "commit": None}

    # ---- collections --------------------------------------------------------------------

    def list_collections(self) -> dict[str, Any]:
        names = [c.name for c in self.client.get_collections().collections]
        return {"collections": [{"name": n} for n in names]}

    def get_collection(self, name: str) -> dict[str, Any]:
        self._collection(name)
        info = self.client.get_collection(name)
        out = info.model_dump(mode="json", exclude_none=True)
        out["payload_schema"] = {
            field: {"data_type": schema, "points": info.points_count or 0}
            for field, schema in self.indexes.get(name, {}).items()
        }
        return out

    def collection_exists(self, name: str) -> dict[str, Any]:
        return {"exists": bool(self.client.collection_exists(name))}

    def create_collection(self, name: str, body: Any) -> bool:
        if self.client.collection_exists(name):
            raise RestError(400, f"Wrong input: Collection `{name}` already exists!")
        body = {} if body is None else body
        req = _request(body, models.CreateCollection, filter_field=None)
        kwargs: dict[str, Any] = {
            "vectors_config": req.vectors if req.vectors is not None else {},
            "sparse_vectors_config": req.sparse_vectors,
        }
        for field in ("shard_number", "replication_factor", "write_consistency_factor",
                      "on_disk_payload", "metadata"):
            if getattr(req, field) is not None:
                kwargs[field] = getattr(req, field)
        self._local_call(self.client.create_collection, name, **kwargs)
        self.op_counter[name] = 0
        self.versions[name] = {}
        self.indexes[name] = {}
        return True

    def update_collection(self, name: str, body: Any) -> bool:
        self._collection(name)
        req = _request(body if body is not None else {}, models.UpdateCollection, filter_field=None)
        kwargs = {}
        if req.sparse_vectors is not None:
            kwargs["sparse_vectors_config"] = req.sparse_vectors
        if req.vectors is not None:
            kwargs["vectors_config"] = req.vectors
        if req.metadata is not None:
            kwargs["metadata"] = req.metadata
        self._local_call(self.client.update_collection, name, **kwargs)
        return True

    def delete_collection(self, name: str) -> bool:
        existed = bool(self.client.collection_exists(name))
        if existed:
            self.client.delete_collection(name)
        for table in (self.op_counter, self.versions, self.indexes):
            table.pop(name, None)
        return existed

    def create_index(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        req = _request(body, models.CreateFieldIndex, filter_field=None)
        schema = req.field_schema
        if schema is None:
            raise RestError(400, "Wrong input: field_schema is required")
        self._local_call(self.client.create_payload_index, name, req.field_name, field_schema=schema)
        kind = schema.value if hasattr(schema, "value") else getattr(schema, "type", schema)
        self.indexes.setdefault(name, {})[req.field_name] = getattr(kind, "value", kind)
        return self._update_result(self._bump(name, []), wait)

    def delete_index(self, name: str, field: str, wait: bool) -> dict[str, Any]:
        self._collection(name)
        self._local_call(self.client.delete_payload_index, name, field)
        self.indexes.setdefault(name, {}).pop(field, None)
        return self._update_result(self._bump(name, []), wait)

    # ---- points: writes -----------------------------------------------------------------

    def upsert(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "PointInsertOperations")
        if "batch" in obj:
            req = _request(obj, models.PointsBatch, filter_field="update_filter")
            ids = list(req.batch.ids)
            points: Any = req.batch
        else:
            req = _request(obj, models.PointsList, filter_field="update_filter")
            ids = [p.id for p in req.points]
            points = req.points
        self._local_call(
            self.client.upsert, name, points=points, update_filter=req.update_filter,
            update_mode=req.update_mode, wait=True,
        )
        return self._update_result(self._bump(name, ids), wait)

    def retrieve(self, name: str, body: Any) -> list[dict[str, Any]]:
        self._collection(name)
        req = _request(body, models.PointRequest, filter_field=None)
        records = self._local_call(
            self.client.retrieve, name, ids=req.ids,
            with_payload=True if req.with_payload is None else req.with_payload,
            with_vectors=False if req.with_vector is None else req.with_vector,
        )
        return [self._record(r) for r in records]

    def get_point(self, name: str, raw_id: str) -> dict[str, Any]:
        self._collection(name)
        pid: Any
        if re.fullmatch(r"\d+", raw_id):
            pid = int(raw_id)
        else:
            try:
                pid = str(uuid.UUID(raw_id))
            except ValueError:
                raise RestError(400, f'Wrong input: Can not recognize "{raw_id}" as point id') from None
        records = self._local_call(self.client.retrieve, name, ids=[pid], with_payload=True, with_vectors=True)
        if not records:
            raise RestError(404, f"Not found: Point with id {pid} does not exists!")
        return self._record(records[0])

    def _selector(self, obj: dict[str, Any], points_key: str = "points") -> tuple[Any, Any]:
        if obj.get(points_key) is not None:
            ids = _validate(models.PointIdsList, {"points": obj[points_key]}).points
            return ids, None
        if "filter" in obj:
            return None, parse_filter(obj.get("filter"))
        raise format_error("data did not match any variant of untagged enum PointsSelector")

    def delete_points(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "PointsSelector")
        ids, flt = self._selector(obj)
        affected = self._selector_ids(name, ids, flt)
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt or models.Filter())
        self._local_call(self.client.delete, name, points_selector=selector)
        return self._update_result(self._bump(name, affected), wait)

    def set_payload(self, name: str, body: Any, wait: bool, overwrite: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "SetPayload")
        if not isinstance(obj.get("payload"), dict):
            raise format_error("missing field `payload`")
        ids, flt = self._selector(obj)
        affected = self._selector_ids(name, ids, flt)
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt or models.Filter())
        if overwrite:
            self._local_call(self.client.overwrite_payload, name, payload=obj["payload"], points=selector)
        else:
            self._local_call(self.client.set_payload, name, payload=obj["payload"], points=selector, key=obj.get("key"))
        return self._update_result(self._bump(name, affected), wait)

    def delete_payload(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "DeletePayload")
        keys = obj.get("keys")
        if not isinstance(keys, list):
            raise format_error("missing field `keys`")
        ids, flt = self._selector(obj)
        affected = self._selector_ids(name, ids, flt)
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt or models.Filter())
        self._local_call(self.client.delete_payload, name, keys=keys, points=selector)
        return self._update_result(self._bump(name, affected), wait)

    def clear_payload(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "PointsSelector")
        ids, flt = self._selector(obj)
        affected = self._selector_ids(name, ids, flt)
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt or models.Filter())
        self._local_call(self.client.clear_payload, name, points_selector=selector)
        return self._update_result(self._bump(name, affected), wait)

    def update_vectors(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        req = _request(body, models.UpdateVectors, filter_field="update_filter")
        self._local_call(self.client.update_vectors, name, points=req.points, update_filter=req.update_filter)
        return self._update_result(self._bump(name, [p.id for p in req.points]), wait)

    def delete_vectors(self, name: str, body: Any, wait: bool) -> dict[str, Any]:
        self._collection(name)
        obj = _require_object(body, "DeleteVectors")
        if not isinstance(obj.get("vector"), list):
            raise format_error("missing field `vector`")
        ids, flt = self._selector(obj)
        affected = self._selector_ids(name, ids, flt)
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt or models.Filter())
        self._local_call(self.client.delete_vectors, name, vectors=obj["vector"], points=selector)
        return self._update_result(self._bump(name, affected), wait)

    def batch(self, name: str, body: Any, wait: bool) -> list[dict[str, Any]]:
        self._collection(name)
        obj = _require_object(body, "UpdateOperations")
        ops = obj.get("operations")
        if not isinstance(ops, list):
            raise format_error("missing field `operations`")
        results = []
        handlers: dict[str, Callable[[Any], dict[str, Any]]] = {
            "upsert": lambda b: self.upsert(name, b, wait),
            "delete": lambda b: self.delete_points(name, b, wait),
            "set_payload": lambda b: self.set_payload(name, b, wait, overwrite=False),
            "overwrite_payload": lambda b: self.set_payload(name, b, wait, overwrite=True),
            "delete_payload": lambda b: self.delete_payload(name, b, wait),
            "clear_payload": lambda b: self.clear_payload(name, b, wait),
            "update_vectors": lambda b: self.update_vectors(name, b, wait),
            "delete_vectors": lambda b: self.delete_vectors(name, b, wait),
        }
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in handlers:
                raise format_error(f"operations[{i}]: unknown variant, expected one of {', '.join(handlers)}")
            kind, inner = next(iter(op.items()))
            results.append(handlers[kind](inner))
        return results

    # ---- points: reads ------------------------------------------------------------------

    def scroll(self, name: str, body: Any) -> dict[str, Any]:
        self._collection(name)
        req = _request(body if body is not None else {}, models.ScrollRequest)
        records, next_offset = self._local_call(
            self.client.scroll, name, scroll_filter=req.filter,
            limit=10 if req.limit is None else req.limit, order_by=req.order_by, offset=req.offset,
            with_payload=True if req.with_payload is None else req.with_payload,
            with_vectors=False if req.with_vector is None else req.with_vector,
        )
        out: dict[str, Any] = {"points": [self._record(r) for r in records]}
        out["next_page_offset"] = None if req.order_by is not None else _point_id(next_offset)
        return out

    def count(self, name: str, body: Any) -> dict[str, Any]:
        self._collection(name)
        req = _request(body if body is not None else {}, models.CountRequest)
        res = self._local_call(self.client.count, name, count_filter=req.filter, exact=True)
        return {"count": res.count}

    def facet(self, name: str, body: Any) -> dict[str, Any]:
        self._collection(name)
        req = _request(body, models.FacetRequest)
        res = self._local_call(
            self.client.facet, name, key=req.key, facet_filter=req.filter,
            limit=10 if req.limit is None else req.limit, exact=bool(req.exact),
        )
        return {"hits": [{"value": h.value, "count": h.count} for h in res.hits]}

    def _query(self, name: str, req: Any) -> dict[str, Any]:
        res = self._local_call(
            self.client.query_points, name, query=req.query, using=req.using,
            prefetch=req.prefetch, query_filter=req.filter, search_params=req.params,
            limit=10 if req.limit is None else req.limit, offset=req.offset,
            with_payload=False if req.with_payload is None else req.with_payload,
            with_vectors=False if req.with_vector is None else req.with_vector,
            score_threshold=req.score_threshold, lookup_from=req.lookup_from,
        )
        return {"points": [self._scored(name, p) for p in res.points]}

    def query(self, name: str, body: Any) -> dict[str, Any]:
        self._collection(name)
        return self._query(name, _request(body if body is not None else {}, models.QueryRequest))

    def query_batch(self, name: str, body: Any) -> list[dict[str, Any]]:
        self._collection(name)
        obj = _require_object(body, "QueryRequestBatch")
        searches = obj.get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        reqs = [_request(s, models.QueryRequest, where=f"searches[{i}]") for i, s in enumerate(searches)]
        return [self._query(name, r) for r in reqs]

    def query_groups(self, name: str, body: Any) -> dict[str, Any]:
        self._collection(name)
        req = _request(body, models.QueryGroupsRequest)
        res = self._local_call(
            self.client.query_points_groups, name, group_by=req.group_by, query=req.query,
            using=req.using, prefetch=req.prefetch, query_filter=req.filter,
            search_params=req.params, limit=10 if req.limit is None else req.limit,
            group_size=3 if req.group_size is None else req.group_size,
            with_payload=False if req.with_payload is None else req.with_payload,
            with_vectors=False if req.with_vector is None else req.with_vector,
            score_threshold=req.score_threshold, with_lookup=req.with_lookup,
            lookup_from=req.lookup_from,
        )
        return {"groups": [self._group(name, g) for g in res.groups]}

    def _group(self, name: str, g: models.PointGroup) -> dict[str, Any]:
        out: dict[str, Any] = {"hits": [self._scored(name, p) for p in g.hits], "id": g.id}
        if g.lookup is not None:
            out["lookup"] = self._record(g.lookup)
        return out

    def matrix(self, name: str, body: Any, kind: str) -> dict[str, Any]:
        self._collection(name)
        req = _request(body if body is not None else {}, models.SearchMatrixRequest)
        kwargs = dict(
            query_filter=req.filter, limit=3 if req.limit is None else req.limit,
            sample=10 if req.sample is None else req.sample, using=req.using,
        )
        if kind == "pairs":
            res = self._local_call(self.client.search_matrix_pairs, name, **kwargs)
            return {"pairs": [{"a": _point_id(p.a), "b": _point_id(p.b), "score": p.score} for p in res.pairs]}
        res = self._local_call(self.client.search_matrix_offsets, name, **kwargs)
        return {
            "offsets_row": list(res.offsets_row),
            "offsets_col": list(res.offsets_col),
            "scores": list(res.scores),
            "ids": [_point_id(i) for i in res.ids],
        }

    # ---- legacy (v1.18 OpenAPI): search, recommend, discover ----------------------------

    def _legacy(self, name: str, obj: Any, where: str, kind: str) -> dict[str, Any]:
        obj = _require_object(obj, f"{kind.capitalize()}Request")
        common = {
            "filter": obj.get("filter"),
            "params": obj.get("params"),
            "limit": obj.get("limit"),
            "offset": obj.get("offset"),
            "with_payload": obj.get("with_payload"),
            "with_vector": obj.get("with_vector"),
            "score_threshold": obj.get("score_threshold"),
        }
        if kind == "search":
            if "limit" not in obj:
                raise format_error(f"{where}: missing field `limit`")
            vector = obj.get("vector")
            using = None
            if isinstance(vector, dict) and "name" in vector:
                using = vector["name"]
                vector = vector.get("vector")
            common.update(query={"nearest": vector}, using=using)
        elif kind == "recommend":
            if "limit" not in obj:
                raise format_error(f"{where}: missing field `limit`")
            rec = {"positive": obj.get("positive") or [], "negative": obj.get("negative") or []}
            if obj.get("strategy") is not None:
                rec["strategy"] = obj["strategy"]
            common.update(query={"recommend": rec}, using=obj.get("using"), lookup_from=obj.get("lookup_from"))
        else:  # discover
            if "limit" not in obj:
                raise format_error(f"{where}: missing field `limit`")
            context = obj.get("context") or []
            if obj.get("target") is None:
                common.update(query={"context": context})
            else:
                common.update(query={"discover": {"target": obj["target"], "context": context}})
            common.update(using=obj.get("using"), lookup_from=obj.get("lookup_from"))
        common = {k: v for k, v in common.items() if v is not None}
        req = _request(common, models.QueryRequest, where=where)
        return self._query(name, req)

    def legacy(self, name: str, body: Any, kind: str) -> list[dict[str, Any]]:
        self._collection(name)
        return self._legacy(name, body, "", kind)["points"]

    def legacy_batch(self, name: str, body: Any, kind: str) -> list[list[dict[str, Any]]]:
        self._collection(name)
        obj = _require_object(body, f"{kind.capitalize()}RequestBatch")
        searches = obj.get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        return [self._legacy(name, s, f"searches[{i}]", kind)["points"] for i, s in enumerate(searches)]


def _translate_value_error(exc: ValueError) -> RestError:
    msg = str(exc)
    m = re.fullmatch(r"Point (.+) is not found in the collection", msg)
    if m:
        return RestError(404, f"Not found: No point with id {m.group(1)} found")
    m = re.fullmatch(r"Collection (.+) not found", msg)
    if m:
        return RestError(404, f"Not found: Collection `{m.group(1)}` doesn't exist!")
    return RestError(400, f"Wrong input: {msg}")
