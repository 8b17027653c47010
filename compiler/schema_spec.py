"""Output types from short specs: a schema string such as `"name, age int, tags list[str]"`, a Pydantic model or a
JSON Schema, compiled to a task (`as_task`)."""

from __future__ import annotations

import re
from typing import Any, Sequence

from pydantic import BaseModel, create_model

from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.task import CompiledTask, compile_json_schema, compile_task, default_instructions

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_FIELD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:[: ]\s*(\w+(?:\[\w+\])?))?\s*$")


def model_from_spec(spec: str, name: str = "Output") -> type[BaseModel]:
    """`"name, age int, tags list[str]"` -> a Pydantic model (type defaults to str; `list[T]` for lists)."""
    fields: dict[str, Any] = {}
    for part in (p for p in spec.split(",") if p.strip()):
        m = _FIELD.match(part)
        kind = (m.group(2) or "str") if m else None
        inner = kind[5:-1] if kind and kind.startswith("list[") else kind
        if m is None or inner not in _TYPES or (kind != inner and not kind.startswith("list[")):
            raise TaskSpecError(f"cannot read schema field {part.strip()!r}",
                                hint="write fields as 'name', 'age int', 'tags list[str]' (str, int, float, bool)")
        fields[m.group(1)] = (list[_TYPES[inner]] if kind != inner else _TYPES[inner], ...)
    if not fields:
        raise TaskSpecError("the schema string names no field", hint="e.g. 'name, age int'")
    return create_model(name, **fields)


def as_task(output: Any, instructions: str | None = None,
            examples: Sequence[tuple[str, Any]] | None = None) -> CompiledTask:
    """A Pydantic model class, a JSON Schema dict or a schema string -> a compiled task."""
    if isinstance(output, CompiledTask):
        return output
    if isinstance(output, str):
        output = model_from_spec(output)
    if isinstance(output, dict):
        return compile_json_schema(output, instructions or "Extract the requested fields from the text.")
    return compile_task(output, instructions or default_instructions(output), examples=examples)
