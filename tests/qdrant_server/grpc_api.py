"""The double's gRPC face: Qdrant's gRPC API served by grpcio with qdrant-client's own generated
servicers (`qdrant_client.grpc`), over the same store as the REST face (`rest_api.RestApi`).

Every call is converted with qdrant-client's own conversion module
(`qdrant_client.conversions.conversion`: `GrpcToRest` for the request's parts, `RestToGrpc` for
the answer's) into the REST face's request, run there under the store's lock, and converted
back. So the gRPC face answers what the REST face answers for the same request, and a point
written over one face is read over the other. Its errors are the REST face's, as gRPC codes
(404 → NOT_FOUND, 400/422 → INVALID_ARGUMENT, 409 → ALREADY_EXISTS, 401 → UNAUTHENTICATED).

Methods the tests and clients do not use (snapshots, cluster setup, shard keys, aliases
writes, vector names) answer UNIMPLEMENTED; the real server is the reference for those, and
vecgate's own handling of them is tested there.
"""

from __future__ import annotations

import time
from concurrent import futures
from typing import Any, Callable

import grpc
from qdrant_client import grpc as g
from qdrant_client.conversions.conversion import GrpcToRest as G
from qdrant_client.conversions.conversion import RestToGrpc as R
from qdrant_client.http import models as m

from rest_api import SERVER_VERSION, RestApi
from rest_filter import RestError

CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    415: grpc.StatusCode.UNIMPLEMENTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
}


def dump(model: Any) -> Any:
    """A REST model as the JSON body the REST face reads."""
    if isinstance(model, list):
        return [dump(item) for item in model]
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", exclude_none=True, by_alias=True)
    return model


def opt(message: Any, field: str, convert: Callable[[Any], Any] | None = None) -> Any:
    """A field the message has set, converted (`None` when unset)."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return dump(convert(value)) if convert else value


def selector(sel: Any) -> dict[str, Any]:
    """A `PointsSelector` as REST's `points` or `filter`."""
    converted = dump(G.convert_points_selector(sel))
    return {k: v for k, v in converted.items() if k in ("points", "filter")}


def body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def update_response(result: dict[str, Any], started: float) -> Any:
    return g.PointsOperationResponse(
        result=R.convert_update_result(m.UpdateResult(**result)), time=time.perf_counter() - started
    )


def with_payload_map(point: dict[str, Any]) -> dict[str, Any]:
    """gRPC has no null payload: a point without one carries an empty map."""
    return {**point, "payload": point.get("payload") or {}}


def scored(points: list[dict[str, Any]]) -> list[Any]:
    return [R.convert_scored_point(m.ScoredPoint.model_validate(with_payload_map(p))) for p in points]


def records(points: list[dict[str, Any]]) -> list[Any]:
    return [R.convert_retrieved_point(m.Record.model_validate(with_payload_map(p))) for p in points]


def groups(result: dict[str, Any]) -> Any:
    return R.convert_groups_result(m.GroupsResult.model_validate(result))


def legacy_search(req: Any) -> dict[str, Any]:
    vector: Any = list(req.vector)
    if req.HasField("sparse_indices"):
        vector = {"indices": list(req.sparse_indices.data), "values": list(req.vector)}
    if req.HasField("vector_name"):
        vector = {"name": req.vector_name, "vector": vector}
    return body(
        vector=vector,
        filter=opt(req, "filter", G.convert_filter),
        limit=req.limit,
        offset=opt(req, "offset"),
        with_payload=opt(req, "with_payload", G.convert_with_payload_interface),
        with_vector=opt(req, "with_vectors", G.convert_with_vectors_selector),
        score_threshold=opt(req, "score_threshold"),
        params=opt(req, "params", G.convert_search_params),
    )


def legacy_recommend(req: Any) -> dict[str, Any]:
    ids = lambda items: [dump(G.convert_point_id(i)) for i in items]  # noqa: E731
    return body(
        positive=ids(req.positive) + [list(v.data) for v in req.positive_vectors],
        negative=ids(req.negative) + [list(v.data) for v in req.negative_vectors],
        strategy=opt(req, "strategy", G.convert_recommend_strategy),
        filter=opt(req, "filter", G.convert_filter),
        limit=req.limit,
        offset=opt(req, "offset"),
        with_payload=opt(req, "with_payload", G.convert_with_payload_interface),
        with_vector=opt(req, "with_vectors", G.convert_with_vectors_selector),
        score_threshold=opt(req, "score_threshold"),
        using=opt(req, "using"),
        lookup_from=opt(req, "lookup_from", G.convert_lookup_location),
    )


def query_groups(req: Any) -> dict[str, Any]:
    return body(
        prefetch=[dump(G.convert_prefetch_query(p)) for p in req.prefetch] or None,
        query=opt(req, "query", G.convert_query),
        using=opt(req, "using"),
        filter=opt(req, "filter", G.convert_filter),
        params=opt(req, "params", G.convert_search_params),
        score_threshold=opt(req, "score_threshold"),
        with_payload=opt(req, "with_payload", G.convert_with_payload_interface),
        with_vector=opt(req, "with_vectors", G.convert_with_vectors_selector),
        lookup_from=opt(req, "lookup_from", G.convert_lookup_location),
        limit=opt(req, "limit"),
        group_size=opt(req, "group_size"),
        group_by=req.group_by,
        with_lookup=opt(req, "with_lookup", G.convert_with_lookup),
    )


def batch_names(entries: Any) -> None:
    """The server validates every batch entry's collection name (it then reads the batch's)."""
    bad = [f"{i}" for i, e in enumerate(entries) if not 1 <= len(e.collection_name) <= 255]
    if bad:
        raise RestError(400, "Validation error in body: [" + "; ".join(
            f"entries[{i}].collection_name: value \"\" invalid, must be from 1 to 255 characters" for i in bad) + "]")


class Face:
    """Runs one REST operation for a call and maps its errors to gRPC codes."""

    def __init__(self, api: RestApi) -> None:
        self.api = api

    def run(self, context: Any, operation: Callable[[], Any]) -> Any:
        try:
            with self.api.store.lock:
                return operation()
        except RestError as err:
            context.abort(CODES.get(err.status, grpc.StatusCode.INTERNAL), err.message)
        except Exception as exc:  # anything the double did not expect
            context.abort(grpc.StatusCode.INTERNAL, f"Service internal error: {type(exc).__name__}: {exc}")


class Points(g.PointsServicer):
    def __init__(self, face: Face) -> None:
        self.face, self.api = face, face.api

    def _write(self, context: Any, run: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        return update_response(self.face.run(context, run), started)

    def Upsert(self, req, context):  # noqa: N802
        if not req.points:
            # The server's gRPC face refuses it before its collection layer (REST does too).
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Bad request: Empty update request")
        points = [dump(G.convert_point_struct(p)) for p in req.points]
        b = body(points=points, update_filter=opt(req, "update_filter", G.convert_filter),
                 update_mode=opt(req, "update_mode", G.convert_update_mode))
        return self._write(context, lambda: self.api.upsert(req.collection_name, b, req.wait))

    def Delete(self, req, context):  # noqa: N802
        return self._write(context, lambda: self.api.delete_points(req.collection_name, selector(req.points), req.wait))

    def SetPayload(self, req, context):  # noqa: N802
        b = body(payload=G.convert_payload(req.payload), key=opt(req, "key"), **selector(req.points_selector))
        return self._write(context, lambda: self.api.set_payload(req.collection_name, b, req.wait, False))

    def OverwritePayload(self, req, context):  # noqa: N802
        b = body(payload=G.convert_payload(req.payload), key=opt(req, "key"), **selector(req.points_selector))
        return self._write(context, lambda: self.api.set_payload(req.collection_name, b, req.wait, True))

    def DeletePayload(self, req, context):  # noqa: N802
        b = body(keys=list(req.keys), **selector(req.points_selector))
        return self._write(context, lambda: self.api.delete_payload(req.collection_name, b, req.wait))

    def ClearPayload(self, req, context):  # noqa: N802
        return self._write(context, lambda: self.api.clear_payload(req.collection_name, selector(req.points), req.wait))

    def UpdateVectors(self, req, context):  # noqa: N802
        b = body(points=[dump(G.convert_point_vectors(p)) for p in req.points],
                 update_filter=opt(req, "update_filter", G.convert_filter))
        return self._write(context, lambda: self.api.update_vectors(req.collection_name, b, req.wait))

    def DeleteVectors(self, req, context):  # noqa: N802
        b = body(vector=list(req.vectors.names), **selector(req.points_selector))
        return self._write(context, lambda: self.api.delete_vectors(req.collection_name, b, req.wait))

    def UpdateBatch(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = {"operations": [dump(G.convert_points_update_operation(o)) for o in req.operations]}
        results = self.face.run(context, lambda: self.api.batch(req.collection_name, b, req.wait))
        return g.UpdateBatchResponse(
            result=[R.convert_update_result(m.UpdateResult(**r)) for r in results], time=time.perf_counter() - started
        )

    def Get(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(ids=[dump(G.convert_point_id(i)) for i in req.ids],
                 with_payload=opt(req, "with_payload", G.convert_with_payload_interface),
                 with_vector=opt(req, "with_vectors", G.convert_with_vectors_selector))
        points = self.face.run(context, lambda: self.api.retrieve(req.collection_name, b))
        return g.GetResponse(result=records(points), time=time.perf_counter() - started)

    def Scroll(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(filter=opt(req, "filter", G.convert_filter), limit=opt(req, "limit"),
                 offset=opt(req, "offset", G.convert_point_id),
                 with_payload=opt(req, "with_payload", G.convert_with_payload_interface),
                 with_vector=opt(req, "with_vectors", G.convert_with_vectors_selector),
                 order_by=opt(req, "order_by", G.convert_order_by))
        result = self.face.run(context, lambda: self.api.scroll(req.collection_name, b))
        offset = result.get("next_page_offset")
        return g.ScrollResponse(
            result=records(result["points"]),
            next_page_offset=R.convert_extended_point_id(offset) if offset is not None else None,
            time=time.perf_counter() - started,
        )

    def Count(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(filter=opt(req, "filter", G.convert_filter), exact=opt(req, "exact"))
        result = self.face.run(context, lambda: self.api.count(req.collection_name, b))
        return g.CountResponse(result=g.CountResult(count=result["count"]), time=time.perf_counter() - started)

    def Facet(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(key=req.key, filter=opt(req, "filter", G.convert_filter), limit=opt(req, "limit"), exact=opt(req, "exact"))
        result = self.face.run(context, lambda: self.api.facet(req.collection_name, b))
        hits = [R.convert_facet_value_hit(m.FacetValueHit.model_validate(h)) for h in result["hits"]]
        return g.FacetResponse(hits=hits, time=time.perf_counter() - started)

    def Query(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = dump(G.convert_query_points(req))
        result = self.face.run(context, lambda: self.api.query(req.collection_name, b))
        return g.QueryResponse(result=scored(result["points"]), time=time.perf_counter() - started)

    def QueryBatch(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = {"searches": [dump(G.convert_query_points(q)) for q in req.query_points]}
        results = self.face.run(context, lambda: (batch_names(req.query_points), self.api.query_batch(req.collection_name, b))[1])
        return g.QueryBatchResponse(
            result=[g.BatchResult(result=scored(r["points"])) for r in results], time=time.perf_counter() - started
        )

    def QueryGroups(self, req, context):  # noqa: N802
        started = time.perf_counter()
        result = self.face.run(context, lambda: self.api.query_groups(req.collection_name, query_groups(req)))
        return g.QueryGroupsResponse(result=groups(result), time=time.perf_counter() - started)

    def Search(self, req, context):  # noqa: N802
        started = time.perf_counter()
        points = self.face.run(context, lambda: self.api.legacy(req.collection_name, legacy_search(req), "search"))
        return g.SearchResponse(result=scored(points), time=time.perf_counter() - started)

    def SearchBatch(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = {"searches": [legacy_search(s) for s in req.search_points]}
        results = self.face.run(context, lambda: (batch_names(req.search_points), self.api.legacy_batch(req.collection_name, b, "search"))[1])
        return g.SearchBatchResponse(result=[g.BatchResult(result=scored(r)) for r in results], time=time.perf_counter() - started)

    def Recommend(self, req, context):  # noqa: N802
        started = time.perf_counter()
        points = self.face.run(context, lambda: self.api.legacy(req.collection_name, legacy_recommend(req), "recommend"))
        return g.RecommendResponse(result=scored(points), time=time.perf_counter() - started)

    def SearchMatrixPairs(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(filter=opt(req, "filter", G.convert_filter), sample=opt(req, "sample"), limit=opt(req, "limit"), using=opt(req, "using"))
        result = self.face.run(context, lambda: self.api.matrix(req.collection_name, b, "pairs"))
        pairs = R.convert_search_matrix_pairs(m.SearchMatrixPairsResponse.model_validate(result))
        return g.SearchMatrixPairsResponse(result=pairs, time=time.perf_counter() - started)

    def SearchMatrixOffsets(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(filter=opt(req, "filter", G.convert_filter), sample=opt(req, "sample"), limit=opt(req, "limit"), using=opt(req, "using"))
        result = self.face.run(context, lambda: self.api.matrix(req.collection_name, b, "offsets"))
        offsets = R.convert_search_matrix_offsets(m.SearchMatrixOffsetsResponse.model_validate(result))
        return g.SearchMatrixOffsetsResponse(result=offsets, time=time.perf_counter() - started)

    def CreateFieldIndex(self, req, context):  # noqa: N802
        schema = G.convert_payload_schema_type(req.field_type) if req.HasField("field_type") else None
        b = body(field_name=req.field_name, field_schema=dump(schema))
        return self._write(context, lambda: self.api.create_index(req.collection_name, b, req.wait))


class Collections(g.CollectionsServicer):
    def __init__(self, face: Face) -> None:
        self.face, self.api = face, face.api

    def Get(self, req, context):  # noqa: N802
        started = time.perf_counter()
        info = self.face.run(context, lambda: self.api.get_collection(req.collection_name))
        return g.GetCollectionInfoResponse(
            result=R.convert_collection_info(m.CollectionInfo.model_validate(info)), time=time.perf_counter() - started
        )

    def List(self, req, context):  # noqa: N802
        started = time.perf_counter()
        result = self.face.run(context, self.api.list_collections)
        return g.ListCollectionsResponse(
            collections=[g.CollectionDescription(name=c["name"]) for c in result["collections"]],
            time=time.perf_counter() - started,
        )

    def CollectionExists(self, req, context):  # noqa: N802
        started = time.perf_counter()
        result = self.face.run(context, lambda: self.api.collection_exists(req.collection_name))
        return g.CollectionExistsResponse(result=g.CollectionExists(exists=result["exists"]), time=time.perf_counter() - started)

    def Create(self, req, context):  # noqa: N802
        started = time.perf_counter()
        sparse = None
        if req.HasField("sparse_vectors_config"):
            sparse = {k: dump(G.convert_sparse_vector_params(v)) for k, v in req.sparse_vectors_config.map.items()}
        b = body(vectors=opt(req, "vectors_config", G.convert_vectors_config), sparse_vectors=sparse,
                 metadata=G.convert_payload(req.metadata) if req.metadata else None)
        done = self.face.run(context, lambda: self.api.create_collection(req.collection_name, b))
        return g.CollectionOperationResponse(result=bool(done), time=time.perf_counter() - started)

    def Update(self, req, context):  # noqa: N802
        started = time.perf_counter()
        b = body(metadata=G.convert_payload(req.metadata) if req.metadata else None)
        done = self.face.run(context, lambda: self.api.update_collection(req.collection_name, b))
        return g.CollectionOperationResponse(result=bool(done), time=time.perf_counter() - started)

    def Delete(self, req, context):  # noqa: N802
        started = time.perf_counter()
        done = self.face.run(context, lambda: self.api.delete_collection(req.collection_name))
        return g.CollectionOperationResponse(result=bool(done), time=time.perf_counter() - started)

    def ListAliases(self, req, context):  # noqa: N802
        return g.ListAliasesResponse(aliases=[], time=0.0)

    def ListCollectionAliases(self, req, context):  # noqa: N802
        self.face.run(context, lambda: self.api.get_collection(req.collection_name))
        return g.ListAliasesResponse(aliases=[], time=0.0)


class Qdrant(g.QdrantServicer):
    def HealthCheck(self, req, context):  # noqa: N802
        return g.HealthCheckReply(title="qdrant - vector search engine", version=SERVER_VERSION)


class ApiKey(grpc.ServerInterceptor):
    """`api-key: KEY` or `authorization: Bearer KEY` on every call, as the server's API key asks."""

    def __init__(self, key: str) -> None:
        self.key = key

        def refuse(request: Any, context: Any) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid API key or JWT")

        self.refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        metadata = dict(details.invocation_metadata)
        if metadata.get("api-key") == self.key or metadata.get("authorization") == f"Bearer {self.key}":
            return continuation(details)
        return self.refusal


def serve(api: RestApi, host: str, port: int, api_key: str | None) -> tuple[Any, int]:
    """Starts the gRPC face on `host:port` (0: a free port); returns the server and its port."""
    interceptors = [ApiKey(api_key)] if api_key else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    face = Face(api)
    g.add_PointsServicer_to_server(Points(face), server)
    g.add_CollectionsServicer_to_server(Collections(face), server)
    g.add_QdrantServicer_to_server(Qdrant(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server, bound
