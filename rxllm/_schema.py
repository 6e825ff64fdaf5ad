"""A msgspec ``Struct`` type as a request for structured output (docs/contracts.md, 11).

``completion(..., response_format=T)`` with ``T`` a ``msgspec.Struct`` type sends ``T``'s JSON
Schema. The entry layer turns ``T`` into OpenAI's form with :func:`response_format` before the
provider sees it, so every provider translates one shape (the same a caller may write by hand):
``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``.

The schema is ``msgspec.json.schema(T)`` made fit for a model to answer in:

* the root is ``T``'s own object schema, not a ``$ref`` (OpenAI wants an object at the root;
  the other definitions stay under ``$defs``; a reference back to ``T`` becomes ``"#"``);
* every object with ``properties`` gets ``"additionalProperties": false`` unless it says
  otherwise: the model must not invent fields (``T`` would ignore them anyway);
* an ``enum`` (a ``Literal`` or an ``Enum``) whose values share one JSON type names it.

``strict`` is True only when OpenAI's strict mode takes the schema: every property required (no
field with a default), no free-form ``dict`` fields, and none of the keywords strict mode
refuses. Otherwise it is False and the schema still guides the model.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

import msgspec

__all__ = ["is_struct_type", "response_format", "strict_compatible", "struct_schema"]

#: Keywords OpenAI's strict mode does not take.
_NOT_STRICT = frozenset(
    {
        "contains",
        "contentEncoding",
        "default",
        "maxContains",
        "maxLength",
        "maxProperties",
        "minContains",
        "minLength",
        "minProperties",
        "patternProperties",
        "prefixItems",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "uniqueItems",
    }
)
#: String formats strict mode takes.
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_NAME = re.compile(r"[^a-zA-Z0-9_-]")
#: The JSON type of an enum's values (msgspec leaves it out; some providers want it).
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def is_struct_type(value: Any) -> TypeGuard[type[msgspec.Struct]]:
    """Whether ``value`` is a ``msgspec.Struct`` subclass (the class, not an instance)."""
    return isinstance(value, type) and issubclass(value, msgspec.Struct)


#: Keywords holding one subschema, a list of them, or a map of names to them.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "definitions", "patternProperties")


def _walk(node: Any, visit: Any) -> Any:
    """A copy of the schema ``node`` with ``visit`` applied to it and to every subschema in it
    (bottom up); property names and other data are left alone."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for key in _ONE:
        if isinstance(node.get(key), dict):
            node[key] = _walk(node[key], visit)
    for key in _MANY:
        if isinstance(node.get(key), list):
            node[key] = [_walk(item, visit) for item in node[key]]
    for key in _MAP:
        if isinstance(node.get(key), dict):
            node[key] = {name: _walk(sub, visit) for name, sub in node[key].items()}
    result: Any = visit(node)
    return result


def struct_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """``struct``'s JSON Schema with its own object at the root and every object closed."""
    schema = msgspec.json.schema(struct)
    defs: dict[str, Any] = schema.pop("$defs", {})
    ref = schema.pop("$ref", None)
    root_ref = ref if isinstance(ref, str) else None
    if root_ref is not None and root_ref.startswith("#/$defs/"):
        schema = {**defs.pop(root_ref[len("#/$defs/") :]), **schema}

    def close(node: dict[str, Any]) -> dict[str, Any]:
        if root_ref is not None and node.get("$ref") == root_ref:
            node["$ref"] = "#"
        if "enum" in node and "type" not in node:
            kinds = {_JSON_TYPES.get(type(value)) for value in node["enum"]}
            if len(kinds) == 1 and None not in kinds:
                node["type"] = kinds.pop()
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node

    if defs:
        schema["$defs"] = defs
    result: dict[str, Any] = _walk(schema, close)
    return result


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes ``schema`` (an object at the root)."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return False
    ok = True

    def check(node: dict[str, Any]) -> dict[str, Any]:
        nonlocal ok
        unknown_format = node.get("format", "date") not in _STRICT_FORMATS
        if not _NOT_STRICT.isdisjoint(node) or unknown_format:
            ok = False
        elif node.get("type") == "object" or "properties" in node:
            properties = node.get("properties")
            if (
                not isinstance(properties, dict)
                or node.get("additionalProperties") is not False
                or set(node.get("required") or ()) != set(properties)
            ):
                ok = False
        return node

    _walk(schema, check)
    return ok


def response_format(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """OpenAI's ``response_format`` for answers decoding to ``struct``."""
    schema = struct_schema(struct)
    name = _NAME.sub("_", struct.__name__)[:64] or "response"
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": strict_compatible(schema)},
    }
