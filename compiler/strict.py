"""A task's JSON Schema -> OpenAI strict structured-output schema, and results mapped back.

Strict mode wants every property required, optional fields nullable, closed objects and a
subset of keywords, within size limits. Value constraints strict mode lacks (minLength,
uniqueItems, unknown formats, ...) are left to post-validation against the task's own
schema and listed in `post_validated`; shapes it cannot express (free-form maps, `not`,
conditionals, tuples) raise `StrictSchemaError` before any request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.errors import StrictSchemaError
from openfirst.compiler.schema import resolve_ref

STRICT_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
KEPT = {"type", "description", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "minItems", "maxItems"}
DROPPED_ANNOTATIONS = {"title", "default", "examples", "$comment", "readOnly", "writeOnly", "deprecated", "$schema",
                       "$id", "contentMediaType", "contentEncoding", "discriminator"}
POST_VALIDATED = {"minLength", "maxLength", "uniqueItems", "minProperties", "maxProperties", "format", "oneOf",
                  "minContains", "maxContains"}


class StrictLimits(BaseModel):
    """OpenAI's documented limits for strict schemas (other providers: adjust)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_properties: int = Field(5000, ge=1)
    max_depth: int = Field(10, ge=1, description="levels of object nesting")
    max_enum_values: int = Field(1000, ge=1, description="enum values across all enums")
    max_string_length: int = Field(120_000, ge=1, description="property names, definition names, enum/const values")
    large_enum: int = Field(250, ge=1, description="an enum longer than this ...")
    large_enum_string_length: int = Field(15_000, ge=1, description="... may hold at most this many characters")


@dataclass
class StrictSchema:
    schema: dict[str, Any]
    post_validated: list[tuple[str, str]] = field(default_factory=list)  # (keyword, pointer)
    made_nullable: list[str] = field(default_factory=list)  # pointers of optional properties made nullable


def to_strict(schema: dict[str, Any], limits: StrictLimits = StrictLimits()) -> StrictSchema:
    """Transform (a copy of) `schema`; raises StrictSchemaError naming the keyword and pointer."""
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        raise StrictSchemaError("strict mode needs an object at the root", keyword="type", pointer="",
                                hint="wrap the output in a Pydantic model")
    out = StrictSchema({})
    out.schema = _convert(schema, "", out)
    _check_limits(out.schema, limits)
    return out


def _convert(node: Any, pointer: str, out: StrictSchema) -> dict[str, Any]:
    if node is True or node == {}:
        raise StrictSchemaError("strict mode cannot express an unconstrained value", keyword="{}", pointer=pointer,
                                hint="give the field a concrete type")
    if not isinstance(node, dict):
        raise StrictSchemaError("strict mode cannot express this schema", keyword=repr(node), pointer=pointer)
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    new: dict[str, Any] = {}
    for kw, value in node.items():
        here = f"{pointer}/{kw}"
        if kw in DROPPED_ANNOTATIONS or kw in ("required", "additionalProperties"):
            continue
        if kw == "format" and value in STRICT_FORMATS:
            new[kw] = value
        elif kw in POST_VALIDATED:
            out.post_validated.append((kw, pointer))
            if kw == "oneOf":  # branches are generated as anyOf; exclusivity is checked after
                new["anyOf"] = [_convert(s, f"{here}/{i}", out) for i, s in enumerate(value)]
        elif kw in KEPT:
            new[kw] = value
        elif kw == "const":
            new["enum"] = [value]
        elif kw == "anyOf":
            new[kw] = [_convert(s, f"{here}/{i}", out) for i, s in enumerate(value)]
        elif kw == "allOf" and isinstance(value, list) and len(value) == 1:
            new.update(_convert(value[0], f"{here}/0", out))
        elif kw in ("$defs", "definitions"):
            new["$defs" if kw == "$defs" else kw] = {k: _convert(s, f"{here}/{k}", out) for k, s in value.items()}
        elif kw == "items" and isinstance(value, dict):
            new[kw] = _convert(value, here, out)
        elif kw == "properties":
            new[kw] = {k: _convert(s, f"{here}/{k}", out) for k, s in value.items()}
        else:
            raise StrictSchemaError(f"strict mode does not support {kw!r}", keyword=kw, pointer=pointer,
                                    hint="simplify the field, or run this task on a local backend")
    if node.get("type") == "object" or "properties" in node:
        if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"]:
            raise StrictSchemaError("strict mode cannot express free-form maps (additionalProperties schema)",
                                    keyword="additionalProperties", pointer=pointer,
                                    hint="use a list of key/value objects instead of dict[str, ...]")
        props = new.get("properties", {})
        required = set(node.get("required", []))
        for name in props:
            if name not in required and not _nullable(props[name]):
                props[name] = _with_null(props[name])
                out.made_nullable.append(f"{pointer}/properties/{name}")
        new["properties"] = props
        new["required"] = list(props)
        new["additionalProperties"] = False
    return new


def _nullable(s: dict[str, Any]) -> bool:
    t = s.get("type")
    return t == "null" or (isinstance(t, list) and "null" in t) or any(
        isinstance(b, dict) and b.get("type") == "null" for b in s.get("anyOf", []))


def _with_null(s: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in s or "anyOf" in s or "type" not in s:
        return {"anyOf": s.get("anyOf", []) + [{"type": "null"}]} if "anyOf" in s and len(s) == 1 \
            else {"anyOf": [s, {"type": "null"}]}
    t = s["type"]
    s = dict(s, type=(t if isinstance(t, list) else [t]) + ["null"])
    if "enum" in s:
        s["enum"] = list(s["enum"]) + [None]
    return s


def _check_limits(schema: dict[str, Any], limits: StrictLimits) -> None:
    totals = {"properties": 0, "enum_values": 0, "chars": 0}

    def visit(node: Any, pointer: str, depth: int) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" or "properties" in node:
            depth += 1
            if depth > limits.max_depth:
                raise StrictSchemaError(f"objects nest deeper than strict mode's {limits.max_depth} levels",
                                        keyword="properties", pointer=pointer)
        for name, sub in node.get("properties", {}).items():
            totals["properties"] += 1
            totals["chars"] += len(name)
            visit(sub, f"{pointer}/properties/{name}", depth)
        if "enum" in node:
            values = node["enum"]
            totals["enum_values"] += len(values)
            chars = sum(len(str(v)) for v in values if v is not None)
            totals["chars"] += chars
            if len(values) > limits.large_enum and chars > limits.large_enum_string_length:
                raise StrictSchemaError(f"an enum of {len(values)} values holds {chars} characters, over strict "
                                        f"mode's {limits.large_enum_string_length}", keyword="enum", pointer=pointer)
        for i, sub in enumerate(node.get("anyOf", [])):
            visit(sub, f"{pointer}/anyOf/{i}", depth)
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{pointer}/items", depth)
        for name, sub in node.get("$defs", {}).items():
            totals["chars"] += len(name)
            visit(sub, f"/$defs/{name}", 0)

    visit(schema, "", 0)
    for key, limit, kw in (("properties", limits.max_properties, "properties"),
                           ("enum_values", limits.max_enum_values, "enum"),
                           ("chars", limits.max_string_length, "enum")):
        if totals[key] > limit:
            raise StrictSchemaError(f"the schema has {totals[key]} {key.replace('_', ' ')}, over strict mode's "
                                    f"limit of {limit}", keyword=kw, pointer="")


def restore(data: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Undo the nulls strict mode forced on optional properties, so defaults apply again.

    Walks `data` along the task's own schema: a null under a property that was optional and
    does not itself allow null is removed."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if depth > 64 or not isinstance(schema, dict):
        return data
    if isinstance(data, dict):
        branches = [schema] + [_resolve(b, root) for b in schema.get("anyOf", []) + schema.get("oneOf", [])
                               + schema.get("allOf", [])]
        objects = [b for b in branches if isinstance(b, dict) and isinstance(b.get("properties"), dict)]
        if not objects:
            return data
        best = max(objects, key=lambda b: len(set(data) & set(b["properties"])))
        required = set(best.get("required", []))
        out = {}
        for key, value in data.items():
            sub = _resolve(best["properties"].get(key, {}), root)
            if value is None and key not in required and isinstance(sub, dict) and not _allows_null(sub, root):
                continue
            out[key] = restore(value, sub, root, depth + 1)
        return out
    if isinstance(data, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            alternatives = (_resolve(b, root) for b in schema.get("anyOf", []))
            items = next((b["items"] for b in alternatives if isinstance(b, dict) and isinstance(b.get("items"), dict)),
                         None)
        return [restore(x, items, root, depth + 1) for x in data] if isinstance(items, dict) else data
    return data


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    return resolve_ref(schema, root, missing={})  # a ref that leads nowhere constrains nothing


def _allows_null(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if not schema or _nullable(schema) or None in schema.get("enum", [1]) or ("const" in schema and
                                                                            schema["const"] is None):
        return True
    alternatives = (_resolve(b, root) for b in schema.get("anyOf", []) + schema.get("oneOf", []))
    return any(_allows_null(b, root) for b in alternatives if isinstance(b, dict))
