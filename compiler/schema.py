"""Schema stage: JSON Schema -> normalised schema + feature report.

The report lists what the grammar enforces, what only post-validation checks (the
grammar is relaxed there and jsonschema enforces it after generation), what was
bounded so generation cannot run forever, and refuses what cannot run, naming the
keyword and its JSON pointer. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.errors import SchemaRefused

# keywords whose values are subschemas (or maps/lists of them)
_SUB_ONE = ("additionalProperties", "items", "not", "if", "then", "else", "contains", "propertyNames",
            "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_SUB_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUB_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "readOnly", "writeOnly",
               "deprecated", "contentMediaType", "contentEncoding", "$anchor", "discriminator"}


class SchemaOptions(BaseModel):
    """How the schema stage bounds generation (task mode) or stays faithful (benchmark mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_string_length: int | None = Field(2000, ge=1, description="maxLength added to uncapped strings")
    max_items: int | None = Field(200, ge=1, description="maxItems added to uncapped arrays")
    refuse_empty_schema: bool = True
    close_objects: bool = Field(True, description="additionalProperties: false where a schema leaves it open")

    @classmethod
    def faithful(cls) -> "SchemaOptions":
        """No bounds added: for measuring the grammar against a schema's own test instances."""
        return cls(max_string_length=None, max_items=None, refuse_empty_schema=False, close_objects=False)


@dataclass
class FeatureReport:
    enforced: list[tuple[str, str]] = field(default_factory=list)  # (keyword, pointer)
    post_validated: list[tuple[str, str, str]] = field(default_factory=list)  # (keyword, pointer, why)
    bounded: list[tuple[str, str, Any]] = field(default_factory=list)  # (keyword, pointer, value)
    recursive_refs: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True when the grammar alone enforces the whole schema (nothing relaxed)."""
        return not self.post_validated

    def to_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "enforced": sorted({k for k, _ in self.enforced}),
            "post_validated": [{"keyword": k, "pointer": p, "why": w} for k, p, w in self.post_validated],
            "bounded": [{"keyword": k, "pointer": p, "value": v} for k, p, v in self.bounded],
            "recursive_refs": self.recursive_refs,
        }


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def resolve_ref(schema: Any, root: Any, missing: Any = None, max_hops: int = 20) -> Any:
    """Follow local `$ref`s ("#/...") from `schema` within `root`; `missing` where a ref leads nowhere."""
    for _ in range(max_hops):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#")):
            return schema
        node: Any = root
        for part in schema["$ref"][1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, missing) if isinstance(node, dict) else missing
        schema = node
    return schema


def walk(schema: Any, pointer: str = "") -> Iterator[tuple[str, dict]]:
    """Every subschema (dicts only) with its JSON pointer."""
    if not isinstance(schema, dict):
        return
    yield pointer, schema
    for kw in _SUB_ONE:
        if kw in schema:
            yield from walk(schema[kw], f"{pointer}/{kw}")
    for kw in _SUB_MAP:
        if isinstance(schema.get(kw), dict):
            for name, sub in schema[kw].items():
                yield from walk(sub, f"{pointer}/{kw}/{_escape(name)}")
    for kw in _SUB_LIST:
        if isinstance(schema.get(kw), list):
            for i, sub in enumerate(schema[kw]):
                yield from walk(sub, f"{pointer}/{kw}/{i}")
    if isinstance(schema.get("items"), list):  # draft 4-7 tuple form
        for i, sub in enumerate(schema["items"]):
            yield from walk(sub, f"{pointer}/items/{i}")


def _recursive_refs(schema: dict) -> list[str]:
    """Local $refs that lead back to themselves (cycles)."""
    edges: dict[str, set[str]] = {}
    for ptr, sub in walk(schema):
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            owner = _definition_owner(ptr)
            edges.setdefault(owner, set()).add(ref[1:])
    cycles = []
    for start in edges:
        stack, seen = list(edges[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                cycles.append(start or "/")
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend(edges.get(node, ()))
    return sorted(set(cycles))


def _definition_owner(pointer: str) -> str:
    parts = pointer.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1] in ("$defs", "definitions"):
            return "/".join(parts[: i + 1])
    return ""


def normalise(schema: Any, options: SchemaOptions = SchemaOptions()) -> tuple[dict, FeatureReport]:
    """Check, report and bound a schema; the grammar stage adds relaxations later.

    Copy-on-write: the input is never modified, and is returned as is when nothing
    needs bounding (faithful mode)."""
    if schema is True or schema == {}:
        if options.refuse_empty_schema:
            raise SchemaRefused("the empty schema allows any JSON, so generation is unbounded", keyword="{}",
                                pointer="", hint="give the output a type, properties and length caps")
        schema = {}
    if schema is False:
        raise SchemaRefused("the schema `false` accepts nothing", keyword="false", pointer="")
    if not isinstance(schema, dict):
        raise SchemaRefused(f"a schema must be an object, got {type(schema).__name__}", keyword="type", pointer="")
    report = FeatureReport()
    for ptr, sub in walk(schema):
        for kw in sub:
            if kw not in ANNOTATIONS and not kw.startswith("x-"):
                report.enforced.append((kw, ptr))
    out = schema
    if options.max_string_length is not None or options.max_items is not None or options.close_objects:
        out = json.loads(json.dumps(schema))  # a private copy to bound (faster than deepcopy for JSON data)
        for ptr, sub in walk(out):
            _bound(sub, ptr, options, report)
    report.recursive_refs = _recursive_refs(out)
    return out, report


def _bound(sub: dict, ptr: str, options: SchemaOptions, report: FeatureReport) -> None:
    types = sub.get("type")
    types = types if isinstance(types, list) else [types]
    free_string = "string" in types and not {"enum", "const", "pattern", "format", "maxLength"} & set(sub)
    if free_string and options.max_string_length is not None:
        sub["maxLength"] = options.max_string_length
        report.bounded.append(("maxLength", ptr, options.max_string_length))
    if options.close_objects and "properties" in sub and "additionalProperties" not in sub \
            and "patternProperties" not in sub and not {"allOf", "anyOf", "oneOf", "$ref"} & set(sub):
        # open objects let a model invent keys forever; outputs stay valid for the original schema
        sub["additionalProperties"] = False
        report.bounded.append(("additionalProperties", ptr, False))
    if "array" in types and "maxItems" not in sub and options.max_items is not None:
        sub["maxItems"] = options.max_items
        report.bounded.append(("maxItems", ptr, options.max_items))


def drop_keyword(schema: dict, keyword: str, report: FeatureReport, why: str) -> bool:
    """Remove `keyword` wherever it occurs; record each place as post-validated."""
    changed = False
    for ptr, sub in list(walk(schema)):
        if keyword in sub:
            del sub[keyword]
            report.post_validated.append((keyword, ptr, why))
            changed = True
    return changed


def drop_format(schema: dict, fmt: str, report: FeatureReport) -> bool:
    changed = False
    for ptr, sub in list(walk(schema)):
        if sub.get("format") == fmt:
            del sub["format"]
            report.post_validated.append(("format", ptr, f"format {fmt!r} is not in the grammar; checked by validation"))
            changed = True
    return changed


def oneof_to_anyof(schema: dict, report: FeatureReport) -> bool:
    changed = False
    for ptr, sub in list(walk(schema)):
        if "oneOf" in sub:
            branches = sub.pop("oneOf")
            if "anyOf" in sub:
                sub.setdefault("allOf", []).append({"anyOf": branches})
            else:
                sub["anyOf"] = branches
            report.post_validated.append(("oneOf", ptr, "grammar accepts anyOf; exactly-one checked by validation"))
            changed = True
    return changed
