"""Qdrant REST filter JSON -> qdrant_client.models.Filter, with the server's parse rules.

Real Qdrant deserialises filters with serde; qdrant-client's pydantic models differ in a few
places that matter to an authorization proxy (measured in ref/qdrant-measured.md):

* `Filter` rejects unknown keys (400), but a field condition ignores unknown keys and then
  needs at least one operator (422 otherwise);
* `match` is an untagged enum: the first variant that parses wins, so
  `{"value": "A", "any": ["B"]}` is `value: "A"`;
* keys must be valid JSON paths (`""` and `" department"` are 400);
* `min_should.min_count` must be >= 1 (422 since v1.19);
* `is_null` on a key without a payload index is true only for an explicit `null`
  (local mode also says true for `[null]`), so it is sent as `is_null AND values_count < 1`;
* `match.text` / `match.phrase` on a key without a full-text index is a case-sensitive
  substring test in v1.18/v1.19 (`text: "FIN"` matches "FINANCE"), while local mode follows
  the newer tokenizing behaviour; such conditions are sent to local mode as `substring`.

This module reimplements those rules on plain JSON and hands the cleaned result to pydantic.
"""

from __future__ import annotations

import contextvars
import re
from typing import Any

from qdrant_client import models


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


# The payload indexes of the collection being served, field -> schema type (set by the engine).
INDEXED: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("INDEXED", default={})

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
# The order in which the server's untagged `Match` enum tries its variants.
MATCH_VARIANTS = ("value", "text", "text_any", "phrase", "prefix", "any", "except")

# One path segment: a bare name (no dots, brackets, quotes or whitespace) or a quoted name,
# followed by any number of `[]` or `[N]`.
_SEGMENT = r'(?:[^\s.\[\]"]+|"[^"]*")(?:\[\]|\[\d+\])*'
_JSON_PATH = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")


def check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise format_error(f"{where}: invalid type: expected a JSON path string")
    if not _JSON_PATH.match(key):
        raise format_error(f"{where}: Invalid JSON path {key!r}")
    return key


def _one_or_many(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return value
    return [value]


def parse_filter(value: Any, where: str = "filter") -> models.Filter | None:
    """Parses a REST filter (or `null`) the way the server does; raises RestError."""
    if value is None:
        return None
    cleaned = clean_filter(value, where)
    try:
        return models.Filter.model_validate(cleaned)
    except Exception as exc:  # pydantic.ValidationError
        raise format_error(f"{where}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in text[:3])


def clean_filter(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise format_error(f"{where}: invalid type: expected struct Filter")
    for key in value:
        if key not in FILTER_KEYS:
            raise format_error(
                f"{where}: unknown field `{key}`, expected one of "
                "`should`, `min_should`, `must`, `must_not`"
            )
    out: dict[str, Any] = {}
    for part in ("must", "should", "must_not"):
        items = _one_or_many(value.get(part))
        if items is not None:
            out[part] = [
                clean_condition(item, f"{where}.{part}[{i}]") for i, item in enumerate(items)
            ]
    min_should = value.get("min_should")
    if min_should is not None:
        if not isinstance(min_should, dict):
            raise format_error(f"{where}.min_should: invalid type: expected struct MinShould")
        if "conditions" not in min_should or "min_count" not in min_should:
            raise format_error(f"{where}.min_should: missing field")
        conditions = _one_or_many(min_should["conditions"]) or []
        count = min_should["min_count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise format_error(f"{where}.min_should.min_count: expected usize")
        if count < 1:
            raise validation_error(
                f"{where}.min_should.min_count", "value must be greater than or equal to 1"
            )
        out["min_should"] = {
            "conditions": [
                clean_condition(item, f"{where}.min_should.conditions[{i}]")
                for i, item in enumerate(conditions)
            ],
            "min_count": count,
        }
    return out


def clean_condition(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise format_error(f"{where}: data did not match any variant of untagged enum Condition")
    if "key" in value:
        return clean_field_condition(value, where)
    if "is_empty" in value:
        return {"is_empty": {"key": check_key(_get_key(value["is_empty"], where), where)}}
    if "is_null" in value:
        key = check_key(_get_key(value["is_null"], where), where)
        if key in INDEXED.get():
            return {"is_null": {"key": key}}
        # Unindexed v1.18/v1.19 servers: only an explicit null is null, not [null] or [x, null]
        # (local mode, like an indexed field, says both are). "null and no values" is exactly that.
        return {"must": [{"is_null": {"key": key}}, {"key": key, "values_count": {"lt": 1}}]}
    if "has_id" in value:
        ids = value["has_id"]
        if not isinstance(ids, list):
            raise format_error(f"{where}.has_id: invalid type: expected a sequence")
        return {"has_id": ids}
    if "has_vector" in value:
        return {"has_vector": value["has_vector"]}
    if "nested" in value:
        nested = value["nested"]
        if not isinstance(nested, dict) or "key" not in nested or "filter" not in nested:
            raise format_error(f"{where}.nested: expected struct Nested {{key, filter}}")
        return {
            "nested": {
                "key": check_key(nested["key"], f"{where}.nested.key"),
                "filter": clean_filter(nested["filter"], f"{where}.nested.filter"),
            }
        }
    if "slice" in value:
        return {"slice": value["slice"]}
    # A bare filter nested as a condition (deny_unknown_fields applies here too).
    return clean_filter(value, where)


def _get_key(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or "key" not in value:
        raise format_error(f"{where}: missing field `key`")
    return value["key"]


def clean_field_condition(value: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": check_key(value["key"], f"{where}.key")}
    for op in FIELD_OPERATORS:
        if value.get(op) is None:
            continue
        out[op] = clean_match(value[op], f"{where}.match") if op == "match" else value[op]
    match = out.get("match")
    if match and ("text" in match or "phrase" in match) and INDEXED.get().get(out["key"]) != "text":
        out["match"] = {"substring": next(iter(match.values()))}
    if len(out) == 1:
        raise validation_error(f"{where}.__all__", "At least one field condition must be specified")
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _match_variant(name: str, value: dict[str, Any]) -> dict[str, Any] | None:
    if name not in value:
        return None
    v = value[name]
    if name == "value":
        ok = isinstance(v, (str, bool)) or _is_int(v)
    elif name in ("any", "except"):
        ok = isinstance(v, list) and (
            all(isinstance(x, str) for x in v) or all(_is_int(x) for x in v)
        )
    else:
        ok = isinstance(v, str)
    return {name: v} if ok else None


def clean_match(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, dict):
        for name in MATCH_VARIANTS:
            found = _match_variant(name, value)
            if found is not None:
                return found
    raise format_error(f"{where}: data did not match any variant of untagged enum Match")
