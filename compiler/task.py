"""Tasks: a Pydantic output model + instructions + examples, compiled through the schema stage.

`compile_task(Model, instructions=..., examples=...)`; the CLI names a task as
`module:Class` or `path/to/file.py:Class`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ValidationError

from openfirst.compiler.errors import OutputValidationError, TaskSpecError
from openfirst.compiler.guards import Leak, LeakDetector, outline
from openfirst.core.errors import describe_validation_error
from openfirst.compiler.schema import FeatureReport, SchemaOptions, normalise
from openfirst.compiler.validation import check_schema, make_validator

def output_json(output: Any) -> Any:
    """A validated output as a JSON value: a model instance dumped in JSON mode, a raw JSON Schema task's value
    as it is."""
    return output.model_dump(mode="json") if hasattr(output, "model_dump") else output


# how the prompt describes the output; "none": the instructions alone (for a model tuned on the task, which learned
# the output's shape from its training data; the grammar still enforces it)
PromptSchema = Literal["outline", "json-schema", "none"]
ExampleStyle = Literal["marked", "turns"]  # examples in the system prompt, marked; or as chat turns


@dataclass(frozen=True)
class Example:
    input: str
    output: BaseModel


@dataclass
class CompiledTask:
    model: type[BaseModel] | None  # None: a raw JSON Schema task, outputs are validated dicts
    name: str
    instructions: str
    examples: list[Example]
    json_schema: dict[str, Any]  # as Pydantic produced it: the source of truth for validity
    schema: dict[str, Any]  # normalised and bounded, what the grammar stage compiles
    report: FeatureReport
    field_descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._valid = make_validator(self.json_schema)

    def parse(self, text: str) -> Any:
        """JSON text -> validated model instance, or OutputValidationError naming what failed."""
        return self.validate(self.decode(text), text)

    @staticmethod
    def decode(text: str) -> Any:
        """JSON text -> JSON value, or OutputValidationError."""
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputValidationError(f"output is not valid JSON: {exc.msg} at char {exc.pos}", attempts=1,
                                        last_output=text) from exc

    def validate(self, data: Any, text: str) -> Any:
        """A decoded output (`text`, for the error) -> validated model instance (or the value itself for a raw
        JSON Schema task), or OutputValidationError naming what failed."""
        if not self._valid(data):
            from openfirst.compiler.validation import validation_errors

            errs = "; ".join(validation_errors(self.json_schema, data))
            raise OutputValidationError(f"output violates the schema: {errs}", attempts=1, last_output=text)
        if self.model is None:
            return data
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise OutputValidationError(f"output fails model validation: {describe_validation_error(exc, 5)}",
                                        attempts=1,
                                        last_output=text) from exc

    def system_prompt(self, schema_as: PromptSchema = "json-schema", examples_as: ExampleStyle | None = "turns") -> str:
        """Instructions, the output's description (`schema_as`: the raw JSON Schema, or a keyword-free
        outline, or "none": nothing but "Answer with a single JSON object."), field notes, and with `examples_as="marked"` the examples, marked as showing the format only."""
        lines = [self.instructions.strip(), ""]
        if schema_as == "none":
            lines += ["Answer with a single JSON object."]
        elif schema_as == "outline":
            lines += ["Answer with a single JSON object and nothing else, shaped like this:", outline(self.json_schema)]
        else:
            lines += ["Answer with a single JSON object and nothing else. It must match this JSON Schema:",
                      json.dumps(self.json_schema, separators=(",", ":"))]
            if self.field_descriptions:
                lines += ["", "Fields:"] + [f"- {k}: {v}" for k, v in self.field_descriptions.items()]
        if examples_as == "marked":
            for ex in self.examples:
                lines += ["", "Example of the format only. It is about another text: never copy its values.",
                          f"Example text: {ex.input}", f"Example answer: {self._example_json(ex)}"]
        return "\n".join(lines)

    @staticmethod
    def _example_json(ex: Example) -> str:
        return ex.output.model_dump_json(exclude_unset=True)

    def example_outputs(self) -> list[Any]:
        """The examples' outputs as JSON values (what the leak guard compares against)."""
        return [json.loads(self._example_json(ex)) for ex in self.examples]

    @cached_property
    def _leak_detector(self) -> LeakDetector:
        return LeakDetector(self.json_schema, self.example_outputs())

    def leaks(self, data: Any, text: str) -> list[Leak]:
        """Why an output's values look taken from the schema or an example rather than from `text`."""
        return self._leak_detector.find(data, text)

    def messages(self, text: str, feedback: Sequence[tuple[str, str]] = (), schema_as: PromptSchema = "json-schema",
                 examples_as: ExampleStyle | None = "turns") -> list[dict[str, str]]:
        """Chat messages: system (instructions, the output's description, marked examples), example turns
        (`examples_as="turns"`; None: no examples), the input, then retry feedback."""
        msgs = [{"role": "system", "content": self.system_prompt(schema_as, examples_as)}]
        if examples_as == "turns":
            for ex in self.examples:
                msgs.append({"role": "user", "content": ex.input})
                msgs.append({"role": "assistant", "content": self._example_json(ex)})
        msgs.append({"role": "user", "content": text})
        for bad_output, error in feedback:
            msgs.append({"role": "assistant", "content": bad_output})
            msgs.append({"role": "user", "content": f"That answer was rejected: {error}\nReply again with corrected JSON."})
        return msgs


def compile_task(
    model: type[BaseModel],
    instructions: str | None = None,
    examples: Sequence[tuple[str, BaseModel | dict]] | None = None,
    options: SchemaOptions = SchemaOptions(),
) -> CompiledTask:
    """Pydantic model -> JSON Schema -> normalised schema + feature report (refuses what cannot run)."""
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        import dataclasses

        what = (f"the dataclass {model.__name__}" if dataclasses.is_dataclass(model) else
                f"the class {model.__name__}" if inspect.isclass(model) else f"a {type(model).__name__}")
        raise TaskSpecError(f"a task must be a Pydantic BaseModel subclass, got {what}",
                            hint="class Ticket(BaseModel): category: Literal[...] ... (a dataclass: subclass "
                                 "BaseModel instead of @dataclass)")
    doc = inspect.getdoc(model) or ""
    if doc.startswith(f"{model.__name__}(") or not doc or model.__doc__ is None:
        doc = ""
    text = (instructions if instructions is not None else doc).strip()
    if not text:
        raise TaskSpecError(f"task {model.__name__} has no instructions",
                            hint="pass instructions=... or give the model a docstring")
    try:
        json_schema = model.model_json_schema()
    except Exception as exc:  # noqa: BLE001 - pydantic raises several types here
        raise TaskSpecError(f"cannot build a JSON Schema for {model.__name__}: {exc}") from exc
    check_schema(json_schema)
    schema, report = normalise(json_schema, options)
    parsed = []
    for i, ex in enumerate(examples or []):
        try:
            inp, out = ex
            out = out if isinstance(out, model) else model.model_validate(out)
        except (ValueError, TypeError, ValidationError) as exc:
            raise TaskSpecError(f"example {i} of task {model.__name__} is invalid: {exc}",
                                hint="examples are (input text, output object) pairs") from exc
        if not isinstance(inp, str) or not inp.strip():
            raise TaskSpecError(f"example {i} of task {model.__name__} has an empty input")
        parsed.append(Example(inp, out))
    descriptions = {name: f.description for name, f in model.model_fields.items() if f.description}
    return CompiledTask(model, model.__name__, text, parsed, json_schema, schema, report, descriptions)


def compile_json_schema(schema: Any, instructions: str, options: SchemaOptions = SchemaOptions(),
                        name: str = "schema") -> CompiledTask:
    """A task from a raw JSON Schema (no Pydantic model): outputs are validated JSON values."""
    if not instructions.strip():
        raise TaskSpecError("a JSON Schema task needs instructions")
    check_schema(schema)
    norm, report = normalise(schema, options)
    return CompiledTask(None, name, instructions.strip(), [], schema, norm, report)


def load_task_class(spec: str) -> type[BaseModel]:
    """`module:Class` or `path/to/file.py:Class` -> the class, with clear errors."""
    if ":" not in spec:
        raise TaskSpecError(f"task {spec!r} must look like module:Class or path/to/file.py:Class")
    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise TaskSpecError(f"task file {path} does not exist")
        mod_name = f"openfirst_task_{abs(hash(str(path.resolve())))}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        try:
            spec_obj.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code
            raise TaskSpecError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise TaskSpecError(f"cannot import task module {where!r}: {exc}") from exc
    cls = getattr(module, name, None)
    if cls is None:
        raise TaskSpecError(f"{where} has no attribute {name!r}")
    return cls


def default_instructions(cls: Any) -> str | None:
    """The instructions of a model class without a docstring ("Extract the fields of <Class> from the text.") for
    the CLI and the one-call API; None for anything else (`compile_task` itself still refuses a task without
    instructions)."""
    if inspect.isclass(cls) and issubclass(cls, BaseModel) and not (cls.__doc__ or "").strip():
        return f"Extract the fields of {cls.__name__} from the text."
    return None


def load_task(spec: str, options: SchemaOptions = SchemaOptions(), instructions: str | None = None) -> CompiledTask:
    """Load and compile a task; the module may define `INSTRUCTIONS` (str) and `EXAMPLES` (a list of
    (input text, output dict) pairs) beside the class. `instructions` overrides both the module's and the
    docstring; a class with neither gets "Extract the fields of <Class> from the text."."""
    cls = load_task_class(spec)
    module = sys.modules.get(cls.__module__)
    instructions = instructions or getattr(module, "INSTRUCTIONS", None)
    examples = getattr(module, "EXAMPLES", None)
    if instructions is None:
        instructions = default_instructions(cls)
    return compile_task(cls, instructions=instructions, examples=examples, options=options)
