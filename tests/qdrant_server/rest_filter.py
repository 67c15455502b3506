"""Qdrant REST filter JSON -> Qdrant Edge `Filter` objects, read the way the server reads it.

The engine that evaluates a filter is Qdrant Edge (Qdrant's own Rust segment code). What this
module does is only what the server's REST layer does before the engine sees a filter: serde
deserialisation into `segment::types::Filter` and the `validator` checks. Each rule names the
server's answer it mirrors (measured rows are from ref/qdrant-measured.md §5; "source" means
`lib/segment/src/types.rs` at v1.19.0):

* `Filter` has `deny_unknown_fields`: `{"mustt": …}` is a 400 (row 42).
* `must` / `should` / `must_not` take one condition or a list (rows 56, 57); `null` is absent
  (row 58).
* `Condition` is an untagged enum tried in the order field, is_empty, is_null, has_id,
  has_vector, nested, filter (source). An object with `key` is a field condition.
* A field condition ignores unknown keys but needs at least one operator: 422 otherwise
  (rows 59, 66).
* `match` is an untagged enum tried in the order value, text, text_any, phrase, prefix, any,
  except: `{"value": "A", "any": ["B"]}` is `value: "A"` (row 67). `value: null` (row 15) and
  a mixed-type `any` (row 43) match no variant: 400.
* Keys are JSON paths; `""` and `" department"` are 400 (rows 44, 53).
* `min_should.min_count` must be >= 1: 422 since v1.19 (row 46).
* Point ids are unsigned integers or UUIDs (source: `ExtendedPointId`).

Two rules are not the REST layer but the **engine version**: qdrant-edge-py 0.9.0 embeds a
newer engine (1.20-dev) than the v1.18/v1.19 servers, and differs from them in two measured
places. Both are adapted here so the double answers like those servers, and both are listed in
README.md:

* `match.text` / `match.phrase` on a key without a full-text index is a case-sensitive
  substring test on v1.18/v1.19 (row 16: `text: "FIN"` matches "FINANCE", row 54), a tokenized
  match in the newer engine. Sent to the engine as `MatchSubstring`; `match.text_any` likewise
  as "any of its words is a substring" (v1.18.3: `text_any: "FIN HR"` matches "FINANCE"; an
  empty `text_any` matches nothing).
* `is_null` on a key without a payload index is true only for an explicit `null` on
  v1.18/v1.19 (rows 27, 28); the newer engine also says true for `[null]`. Sent as
  `is_null AND values_count < 1` when the key has no index ("null and no values" is exactly an
  explicit null).

One rule works around the Python binding, not the engine: qdrant-edge-py reads a Python `bool`
as the integer 1 in `MatchValue` (the binding tries `str`, then `int`, then `bool`, and a Python
bool is an int). `numpy.bool_` is not an int to it, so a JSON `true`/`false` is passed as
`numpy.bool_` and reaches the engine as a bool, as on the server.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable

import numpy
import qdrant_edge as edge


class RestError(Exception):
    """An error answered with Qdrant's envelope: `{"status":{"error": message},"time":0}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def format_error(detail: str) -> RestError:
    """What serde failures look like on the server: HTTP 400."""
    return RestError(400, f"Format error in JSON body: {detail}")


def validation_error(path: str, detail: str) -> RestError:
    """What `validator` failures look like on the server: HTTP 422."""
    return RestError(422, f"Validation error in JSON body: [{path}: {detail}]")


FILTER_KEYS = ("must", "should", "must_not", "min_should")
FIELD_OPERATORS = (
    "match",
    "range",
    "geo_bounding_box",
    "geo_radius",
    "geo_polygon",
    "values_count",
    "is_empty",
    "is_null",
)

# One path segment: a bare name (no dots, brackets, quotes or whitespace) or a quoted name,
# followed by any number of `[]` or `[N]`.
_SEGMENT = r'(?:[^\s.\[\]"]+|"[^"]*")(?:\[\]|\[\d+\])*'
_JSON_PATH = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise format_error(f"{where}: invalid type: expected a JSON path string")
    if not _JSON_PATH.match(key):
        raise format_error(f"{where}: Invalid JSON path {key!r}")
    return key


def point_id(value: Any, where: str) -> int | str:
    """An `ExtendedPointId`: u64 or UUID (any spelling `uuid` accepts, rendered lowercase)."""
    if is_int(value) and 0 <= value < 2**64:
        return value
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise format_error(f"{where}: data did not match any variant of untagged enum ExtendedPointId")


def one_or_many(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


class FilterReader:
    """Reads filters of one collection; `indexed` maps its indexed keys to their schema type."""

    def __init__(self, indexed: dict[str, str]):
        self.indexed = indexed

    def filter(self, value: Any, where: str = "filter") -> edge.Filter | None:
        """A REST filter (or `null`) as an Edge Filter; raises RestError."""
        if value is None:
            return None
        return self._filter(value, where)

    def _filter(self, value: Any, where: str) -> edge.Filter:
        if not isinstance(value, dict):
            raise format_error(f"{where}: invalid type: expected struct Filter")
        for key in value:
            if key not in FILTER_KEYS:
                raise format_error(
                    f"{where}: unknown field `{key}`, expected one of "
                    "`should`, `min_should`, `must`, `must_not`"
                )
        parts: dict[str, Any] = {}
        for part in ("must", "should", "must_not"):
            items = one_or_many(value.get(part))
            if items is not None:
                parts[part] = [self.condition(c, f"{where}.{part}[{i}]") for i, c in enumerate(items)]
        min_should = value.get("min_should")
        if min_should is not None:
            parts["min_should"] = self._min_should(min_should, f"{where}.min_should")
        return edge.Filter(**parts)

    def _min_should(self, value: Any, where: str) -> edge.MinShould:
        if not isinstance(value, dict):
            raise format_error(f"{where}: invalid type: expected struct MinShould")
        for field in ("conditions", "min_count"):
            if field not in value:
                raise format_error(f"{where}: missing field `{field}`")
        conditions = value["conditions"]
        if not isinstance(conditions, list):
            raise format_error(f"{where}.conditions: invalid type: expected a sequence")
        count = value["min_count"]
        if not is_int(count) or count < 0:
            raise format_error(f"{where}.min_count: invalid value: expected usize")
        if count < 1:
            raise validation_error(f"{where}.min_count", "value must be greater than or equal to 1")
        return edge.MinShould(
            [self.condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions)],
            count,
        )

    def condition(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise format_error(f"{where}: data did not match any variant of untagged enum Condition")
        if "key" in value:
            return self._field(value, where)
        if "is_empty" in value:
            return edge.IsEmptyCondition(self._payload_field(value["is_empty"], f"{where}.is_empty"))
        if "is_null" in value:
            key = self._payload_field(value["is_null"], f"{where}.is_null")
            if key in self.indexed:
                return edge.IsNullCondition(key)
            # Engine-version gap (module docs): an explicit null only.
            return edge.Filter(must=[
                edge.IsNullCondition(key),
                edge.FieldCondition(key, values_count=edge.ValuesCount(lt=1)),
            ])
        if "has_id" in value:
            ids = value["has_id"]
            if not isinstance(ids, list):
                raise format_error(f"{where}.has_id: invalid type: expected a sequence")
            return edge.HasIdCondition({_edge_id(point_id(i, f"{where}.has_id")) for i in ids})
        if "has_vector" in value:
            name = value["has_vector"]
            if not isinstance(name, str):
                raise format_error(f"{where}.has_vector: invalid type: expected a string")
            return edge.HasVectorCondition(name)
        if "nested" in value:
            nested = value["nested"]
            if not isinstance(nested, dict) or "key" not in nested or "filter" not in nested:
                raise format_error(f"{where}.nested: missing field `key` or `filter`")
            return edge.NestedCondition(
                check_key(nested["key"], f"{where}.nested.key"),
                self._filter(nested["filter"], f"{where}.nested.filter"),
            )
        # A bare filter nested as a condition (deny_unknown_fields applies here too).
        return self._filter(value, where)

    @staticmethod
    def _payload_field(value: Any, where: str) -> str:
        if not isinstance(value, dict) or "key" not in value:
            raise format_error(f"{where}: missing field `key`")
        return check_key(value["key"], f"{where}.key")

    def _field(self, value: dict[str, Any], where: str) -> Any:
        key = check_key(value["key"], f"{where}.key")
        ops: dict[str, Any] = {}
        for op in FIELD_OPERATORS:
            if value.get(op) is None:
                continue
            ops[op] = FIELD_READERS[op](value[op], f"{where}.{op}")
        if not ops:
            raise validation_error(f"{where}.__all__", "At least one field condition must be specified")
        match = ops.get("match")
        if isinstance(match, edge.MatchTextAny) and len(ops) == 1 and self.indexed.get(key) != "text":
            # Engine-version gap (module docs): any of the words, each a substring.
            words = match.text_any.split()
            if not words:
                return edge.Filter(must=[edge.HasIdCondition(set())])
            return edge.Filter(should=[edge.FieldCondition(key, match=edge.MatchSubstring(w)) for w in words])
        if isinstance(match, (edge.MatchText, edge.MatchPhrase)) and self.indexed.get(key) != "text":
            # Engine-version gap (module docs): a case-sensitive substring without a text index.
            text = match.text if isinstance(match, edge.MatchText) else match.phrase
            ops["match"] = edge.MatchSubstring(text)
        return edge.FieldCondition(key, **ops)


def _edge_id(pid: int | str) -> Any:
    return uuid.UUID(pid) if isinstance(pid, str) else pid


# ---- field operators -------------------------------------------------------------------------


def read_match(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        for name, reader in MATCH_VARIANTS:
            if name in value:
                found = reader(value[name])
                if found is not None:
                    return found
    raise format_error(f"{where}: data did not match any variant of untagged enum Match")


def _match_value(v: Any) -> Any:
    if isinstance(v, bool):
        return edge.MatchValue(numpy.bool_(v))  # binding workaround (module docs)
    if isinstance(v, str) or is_int(v):
        return edge.MatchValue(v)
    return None


def _text_variant(cls: Callable[[str], Any]) -> Callable[[Any], Any]:
    return lambda v: cls(v) if isinstance(v, str) else None


def _list_variant(cls: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(v: Any) -> Any:
        if not isinstance(v, list):
            return None
        if all(isinstance(x, str) for x in v) or all(is_int(x) for x in v):
            return cls(v)
        return None

    return read


# The order in which the server's untagged `Match` enum tries its variants.
MATCH_VARIANTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("value", _match_value),
    ("text", _text_variant(edge.MatchText)),
    ("text_any", _text_variant(edge.MatchTextAny)),
    ("phrase", _text_variant(edge.MatchPhrase)),
    ("prefix", _text_variant(edge.MatchPrefix)),
    ("any", _list_variant(edge.MatchAny)),
    ("except", _list_variant(edge.MatchExcept)),
]

RANGE_KEYS = ("gt", "gte", "lt", "lte")


def read_range(value: Any, where: str) -> Any:
    """`RangeInterface`: numbers first, then RFC 3339 datetimes (untagged, in that order)."""
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct Range")
    bounds = {k: value[k] for k in RANGE_KEYS if value.get(k) is not None}
    if all(is_number(v) for v in bounds.values()):
        return edge.RangeFloat(**{k: float(v) for k, v in bounds.items()})
    if all(isinstance(v, str) for v in bounds.values()):
        return edge.RangeDateTime(**bounds)
    raise format_error(f"{where}: data did not match any variant of untagged enum RangeInterface")


def read_values_count(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct ValuesCount")
    bounds = {k: value[k] for k in RANGE_KEYS if value.get(k) is not None}
    if not all(is_int(v) and v >= 0 for v in bounds.values()):
        raise format_error(f"{where}: invalid value: expected usize")
    return edge.ValuesCount(**bounds)


def _geo_point(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or not is_number(value.get("lon")) or not is_number(value.get("lat")):
        raise format_error(f"{where}: expected struct GeoPoint {{lon, lat}}")
    return edge.GeoPoint(lon=float(value["lon"]), lat=float(value["lat"]))


def read_geo_bounding_box(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct GeoBoundingBox")
    return edge.GeoBoundingBox(
        _geo_point(value.get("top_left"), f"{where}.top_left"),
        _geo_point(value.get("bottom_right"), f"{where}.bottom_right"),
    )


def read_geo_radius(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or not is_number(value.get("radius")):
        raise format_error(f"{where}: expected struct GeoRadius {{center, radius}}")
    return edge.GeoRadius(_geo_point(value.get("center"), f"{where}.center"), float(value["radius"]))


def _line(value: Any, where: str) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get("points"), list):
        raise format_error(f"{where}: expected struct GeoLineString {{points}}")
    return [_geo_point(p, f"{where}.points[{i}]") for i, p in enumerate(value["points"])]


def read_geo_polygon(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct GeoPolygon")
    interiors = value.get("interiors")
    return edge.GeoPolygon(
        _line(value.get("exterior"), f"{where}.exterior"),
        None if interiors is None else [_line(r, f"{where}.interiors[{i}]") for i, r in enumerate(interiors)],
    )


def _read_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise format_error(f"{where}: invalid type: expected a boolean")
    return value


FIELD_READERS: dict[str, Callable[[Any, str], Any]] = {
    "match": read_match,
    "range": read_range,
    "geo_bounding_box": read_geo_bounding_box,
    "geo_radius": read_geo_radius,
    "geo_polygon": read_geo_polygon,
    "values_count": read_values_count,
    "is_empty": _read_bool,
    "is_null": _read_bool,
}
