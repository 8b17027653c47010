"""Small-model guards: keep schema words and example values out of outputs.

Two failure modes of small models, both measured in benchmarks/results/small-model-guards.md:
- **schema words as values**: shown a raw JSON Schema, a small model answers with its keywords
  (`"skills": ["items", "type", "array", ...]`, `"title": "MeetingNotes"`). Guard: the prompt describes the
  output as an *outline* (`outline`), a JSON-shaped template without schema keywords, and `find_leaks`
  rejects a free-text value that is a schema word and not in the input.
- **copied examples**: shown a few-shot example, a small model repeats its answer for an unrelated input.
  Guard: `find_leaks` rejects a value that copies a run of an example's words that the input does not hold.
  (Marking the examples in the system prompt as "format only", `examples_in_prompt="marked"`, was measured too:
  it made copies more frequent.)

A rejected output is retried with the reason as feedback, like any validation failure (an example copy: retried
without the examples), and ends as a typed `LeakedValue` error when the retries run out: a leak is never returned
as a valid answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

from openfirst.compiler.schema import resolve_ref, walk

SCHEMA_KEYWORDS = frozenset({
    "type", "items", "array", "string", "object", "properties", "integer", "number", "boolean", "null",
    "required", "enum", "const", "anyof", "oneof", "allof", "description", "title", "default", "format",
    "maxlength", "minlength", "minimum", "maximum", "maxitems", "minitems", "pattern", "additionalproperties",
    "$ref", "$defs", "ref", "defs", "schema", "json", "json schema"})
COPY_RUN_WORDS = 5  # a value copying this many consecutive words of an example (not in the input) is a copy
DESCRIPTION_RUN_WORDS = 4  # ... or this many of a field's description ("one sentence, at most 20 characters")
_WORD = re.compile(r"\w+(?:[-'.]\w+)*", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def strings_at(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its JSON pointer."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_at(v, f"{pointer}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_at(v, f"{pointer}/{i}")


def schema_names(schema: Any) -> tuple[set[str], set[str]]:
    """(names a schema shows: titles, property and definition names; strings it allows as enum/const values),
    casefolded."""
    names, allowed, _ = _schema_texts(schema)
    return names, allowed


def _schema_texts(schema: Any) -> tuple[set[str], set[str], list[str]]:
    """Names, allowed enum/const strings (casefolded), and the descriptions of every subschema."""
    names: set[str] = set()
    allowed: set[str] = set()
    descriptions: list[str] = []
    for _, node in walk(schema):
        if isinstance(node.get("description"), str):
            descriptions.append(node["description"])
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                names.update(node[key])
        if isinstance(node.get("title"), str):
            names.add(node["title"])
        values = node.get("enum") if isinstance(node.get("enum"), list) else []
        allowed.update(v.casefold() for v in [*values, node.get("const")] if isinstance(v, str))
    return {n.casefold() for n in names}, allowed, descriptions


def _runs(texts: Sequence[str], n: int) -> set[str]:
    """Every run of n consecutive words of the texts."""
    runs: set[str] = set()
    for text in texts:
        w = _words(text)
        runs |= {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}
    return runs


def _shared_run(value: str, runs: set[str], source_text: str, n: int) -> str | None:
    """The first run of n consecutive words of `value` that is in `runs` and not in `source_text`."""
    w = _words(value)
    for i in range(len(w) - n + 1):
        run = " ".join(w[i:i + n])
        if run in runs and run not in source_text:
            return run
    return None


@dataclass(frozen=True)
class Leak:
    """A value taken from the prompt instead of the input: `kind` "schema" (a schema word) or "example"."""

    kind: Literal["schema", "example"]
    pointer: str
    message: str


class LeakDetector:
    """`find_leaks` for one schema and its examples: what they show is read once, outputs are checked many times.

    A free-text value leaks when it is a JSON Schema keyword, a property, definition or model name of the
    schema (and not an allowed enum value, and not a word of the input), when it copies a run of
    DESCRIPTION_RUN_WORDS words of a field description that the input lacks, or when it copies a run of
    COPY_RUN_WORDS words of an example's output that the input does not hold, or repeats an example's
    value of two or more words that the input does not hold.
    """

    def __init__(self, schema: dict[str, Any], example_outputs: Sequence[Any] = ()):
        names, self.allowed, descriptions = _schema_texts(schema)
        self.shown = SCHEMA_KEYWORDS | names
        self.description_runs = _runs(descriptions, DESCRIPTION_RUN_WORDS)
        ex_strings = [s for out in example_outputs for _, s in strings_at(out)]
        self.example_runs = _runs(ex_strings, COPY_RUN_WORDS)
        self.example_values = {" ".join(_words(s)) for s in ex_strings if len(_words(s)) >= 2}

    def find(self, data: Any, source: str) -> list[Leak]:
        """The values of `data` that look leaked rather than taken from `source` (empty: none found)."""
        src_text = " ".join(_words(source))
        leaks = []
        for pointer, value in strings_at(data):
            pointer = pointer or "/"
            norm = " ".join(_words(value))
            if not norm or norm in self.allowed:
                continue
            if norm in self.shown and norm not in src_text:
                leaks.append(Leak("schema", pointer, f"{pointer}: {value!r} is a word of the schema, not a value "
                                                     "from the text"))
            elif run := _shared_run(value, self.description_runs, src_text, DESCRIPTION_RUN_WORDS):
                leaks.append(Leak("schema", pointer, f"{pointer}: copies {run!r} from a field description, not "
                                                     "from the text"))
            elif norm in self.example_values and norm not in src_text:
                leaks.append(Leak("example", pointer, f"{pointer}: {value!r} repeats the example's answer, not "
                                                      "the text"))
            elif run := _shared_run(value, self.example_runs, src_text, COPY_RUN_WORDS):
                leaks.append(Leak("example", pointer, f"{pointer}: copies {run!r} from the example, not from the "
                                                      "text"))
        return leaks


def find_leaks(data: Any, source: str, schema: dict[str, Any], example_outputs: Sequence[Any] = ()) -> list[Leak]:
    """The values of an output that look leaked rather than taken from `source` (see `LeakDetector`)."""
    return LeakDetector(schema, example_outputs).find(data, source)


# ---- the prompt's description of the output ---------------------------------------------------------------

def outline(schema: dict[str, Any], indent: str = "  ") -> str:
    """A JSON-shaped template of the output for the prompt, without JSON Schema keywords: values are
    described in words ("integer from 1 to 5", "text, at most 160 characters", "list of ..."), with each
    field's description as a trailing comment."""
    return _render(schema, schema, indent, 0, set())


def _render(node: Any, root: dict[str, Any], indent: str, depth: int, seen: set[str]) -> str:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str):
        if ref in seen or depth > 8:
            return ref.rsplit("/", 1)[-1] + " (as above)"
        return _render(resolve_ref(node, root, {}), root, indent, depth, seen | {ref})
    if not isinstance(node, dict):
        return "any value"
    if "const" in node:
        return json.dumps(node["const"])
    if isinstance(node.get("enum"), list):
        return " | ".join(json.dumps(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            parts = [_render(s, root, indent, depth, seen) for s in node[key]]
            return " or ".join(dict.fromkeys(parts))
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(_render({**node, "type": k}, root, indent, depth, seen) for k in kind)
    if kind == "object" or "properties" in node:
        props = node.get("properties") or {}
        if not props:
            return "{ } (an object)"
        required = set(node.get("required") or [])
        pad = indent * (depth + 1)
        lines = []
        for i, (name, sub) in enumerate(props.items()):
            value = _render(sub, root, indent, depth + 1, seen)
            notes = ["optional"] if name not in required else []
            notes += [d for d in [_description(sub)] if d]
            comma = "," if i < len(props) - 1 else ""
            lines.append(f"{pad}{json.dumps(name)}: {value}{comma}" + (f"  // {'; '.join(notes)}" if notes else ""))
        return "{\n" + "\n".join(lines) + "\n" + indent * depth + "}"
    if kind == "array":
        inner = _render(node.get("items", {}), root, indent, depth, seen)
        bounds = _bounds(node.get("minItems"), node.get("maxItems"), "item")
        return f"[{inner}, ...] (a list{', ' + bounds if bounds else ''})"
    if kind == "string":
        fmt = {"date": "a date YYYY-MM-DD", "date-time": "a date-time YYYY-MM-DDThh:mm:ssZ", "email": "an email address",
               "uri": "a URL", "time": "a time hh:mm:ss", "uuid": "a UUID"}.get(node.get("format"), "text")
        extra = [b for b in [_bounds(node.get("minLength"), node.get("maxLength"), "character")] if b]
        if node.get("pattern"):
            extra.append(f"matching {node['pattern']}")
        return fmt + (", " + ", ".join(extra) if extra else "")
    if kind in ("integer", "number"):
        word = "a whole number" if kind == "integer" else "a number"
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        hi = node.get("maximum", node.get("exclusiveMaximum"))
        if lo is not None and hi is not None:
            return f"{word} from {lo} to {hi}"
        if lo is not None:
            return f"{word}, {'above' if 'exclusiveMinimum' in node else 'at least'} {lo}"
        if hi is not None:
            return f"{word}, {'below' if 'exclusiveMaximum' in node else 'at most'} {hi}"
        return word
    if kind == "boolean":
        return "true or false"
    if kind == "null":
        return "null"
    return "any value"


def _description(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("description"), str):
        return node["description"].strip().replace("\n", " ")
    return ""


def _bounds(lo: Any, hi: Any, unit: str) -> str:
    if lo and hi:
        return f"{lo} to {hi} {unit}s"
    if hi is not None:
        return f"at most {hi} {unit}{'s' if hi != 1 else ''}"
    if lo:
        return f"at least {lo} {unit}{'s' if lo != 1 else ''}"
    return ""
