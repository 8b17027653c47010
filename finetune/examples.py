"""Training examples for `openfirst finetune`: a team's labelled JSONL, a service decision log (the frontier's
validated answers) or SNIPS, each output validated against its task, duplicates removed, a held-out share split off
by group.

A labelled JSONL line is `{"input": "...", "output": {...}}`, optionally with `id` and `group` (rows of one group
never straddle the split; the default group is the input itself). A decision log contributes only the records the
frontier answered with a validated output: the service never writes a pinned (private) input's text or output to
its log, so private inputs cannot reach training data by this path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from openfirst.compiler.task import CompiledTask, compile_task
from openfirst.core.errors import LogFormatError
from openfirst.core.rows import iter_raw_rows
from openfirst.finetune.errors import FinetuneError


@dataclass(frozen=True)
class TrainingExample:
    task: str  # the task's name (a key of the task table the examples come with)
    input: str
    output: dict[str, Any]  # validated, as JSON
    id: str = ""
    group: str = ""
    source: str = ""  # file:line, decision id or dataset name: where a bad or surprising example came from

    def key(self) -> str:
        """Identity for de-duplication: task, input and output."""
        blob = json.dumps([self.task, self.input, self.output], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class TrainingSet:
    """Examples and the compiled tasks they belong to (by name); `dropped` counts what was left out and why."""

    tasks: dict[str, CompiledTask]
    examples: list[TrainingExample]
    dropped: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, int, str]] = field(default_factory=list)

    def digest(self) -> str:
        """SHA-256 over the examples' identities in order: the card's data hash."""
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(ex.key().encode())
        return h.hexdigest()


def _validated(task: CompiledTask, output: Any) -> dict[str, Any]:
    """The output as the task's model dumps it (fields in schema order, unset ones left out), or ValueError."""
    text = json.dumps(output, ensure_ascii=False)
    obj = task.validate(output, text)  # OutputValidationError (a ValueError-free CompilerError) on failure
    if hasattr(obj, "model_dump"):
        return json.loads(obj.model_dump_json(exclude_unset=True))
    return obj


def _bad(problems: list, skip: bool, where: str) -> None:
    if problems and not skip:
        shown = "\n".join(f"  {f}:{n}: {why}" for f, n, why in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise LogFormatError(f"{len(problems)} bad line(s) in {where}:\n{shown}{more}", problems,
                             hint="fix them, or pass --skip-bad-lines to leave them out (they are counted)")


def read_labelled(path: Path, task: CompiledTask, skip_bad_lines: bool = False) -> TrainingSet:
    """A team's JSONL of `{"input", "output", "id"?, "group"?}`; every output validated against `task`."""
    from openfirst.compiler.errors import CompilerError

    path = Path(path)
    if not path.is_file():
        raise FinetuneError(f"training data {path} does not exist")
    examples, problems = [], []
    for lineno, row, error in iter_raw_rows(path, "jsonl"):
        if error is None:
            text, out = row.get("input"), row.get("output")
            if not isinstance(text, str) or not text.strip():
                error = "`input` must be a non-empty string"
            elif not isinstance(out, dict):
                error = "`output` must be a JSON object"
            else:
                try:
                    out = _validated(task, out)
                except CompilerError as exc:
                    error = f"output does not fit task {task.name}: {exc.message.removeprefix('output ')}"
        if error:
            problems.append((str(path), lineno, error))
            continue
        rid = str(row.get("id") if row.get("id") is not None else f"{path.name}:{lineno}")
        examples.append(TrainingExample(task.name, text, out, rid, str(row.get("group") or text), f"{path}:{lineno}"))
    _bad(problems, skip_bad_lines, str(path))
    return _finish({task.name: task}, examples, problems)


def read_decisions(path: Path | str, task: CompiledTask, frontier_model: str | None = None,
                   skip_bad_lines: bool = False, service_task: str | None = None) -> TrainingSet:
    """The frontier's validated answers in a service decision log: records routed to the frontier (or escalated to
    it) with stored text and output for this task (`service_task`: its name in the service's [tasks], default the
    task's own name). Pinned inputs have neither in the log, so they never appear."""
    from openfirst.compiler.errors import CompilerError
    from openfirst.service.decision_log import decision_files

    from openfirst.state.database import is_database_url, read_database_decisions

    if is_database_url(str(path)):  # the replicas' shared database ([state] database_url)
        sources: list[tuple[str, Any]] = [("database", ((i, r, None) for i, r in
                                                        enumerate(read_database_decisions(str(path)), 1)))]
    else:
        files = decision_files(Path(path))
        if not files:
            raise FinetuneError(f"decision log {path} does not exist")
        sources = [(str(f), iter_raw_rows(f, "jsonl")) for f in files]
    examples, problems, dropped = [], [], {"not_frontier": 0, "no_text_or_output": 0, "other_task": 0, "failed": 0}
    name, seen = service_task or task.name, set()
    for f, rows in sources:
        for lineno, row, error in rows:
            if error:
                problems.append((str(f), lineno, error))
                continue
            if row.get("task") not in (None, name):
                dropped["other_task"] += 1
                seen.add(str(row.get("task")))
                continue
            if row.get("target") != "frontier" or (frontier_model and row.get("model") != frontier_model):
                dropped["not_frontier"] += 1
                continue
            if not row.get("ok"):
                dropped["failed"] += 1
                continue
            text, out = row.get("query"), row.get("output")
            if not isinstance(text, str) or not text or row.get("query_truncated") or not isinstance(out, dict):
                dropped["no_text_or_output"] += 1  # pinned, stored without text, or cut short
                continue
            try:
                out = _validated(task, out)
            except CompilerError as exc:
                problems.append((str(f), lineno, f"output does not fit task {task.name}: {exc.message}"))
                continue
            rid = str(row.get("id"))
            examples.append(TrainingExample(task.name, text, out, rid, text, f"{f}:{lineno}"))
    _bad(problems, skip_bad_lines, str(path))
    if not examples and seen:
        raise FinetuneError(f"{path} holds no decision for task {name!r}; it holds {', '.join(sorted(seen))}",
                            hint="pass the name the service serves the task under: --service-task NAME")
    ts = _finish({task.name: task}, examples, problems)
    ts.dropped.update({k: v for k, v in dropped.items() if v})
    return ts


def read_snips(spec: str, per_intent: int | None, data_dir: Path, split: str = "train") -> TrainingSet:
    """`snips` (all seven intents) or `snips:Intent`: the first `per_intent` training utterances of each (from
    `train_<Intent>.json`, 300 per intent; past that, or all with None, from `train_<Intent>_full.json`), each intent
    its own task. `split="validate"` reads the 100 test utterances per intent instead."""
    from openfirst.cascade.snips import INTENTS, example_pairs, load_intent, read_full, slot_model

    name, _, intent = spec.partition(":")
    if name != "snips":
        raise FinetuneError(f"unknown public data set {spec!r}", hint="snips or snips:<Intent>")
    intents = [intent] if intent else list(INTENTS)
    unknown = [i for i in intents if i not in INTENTS]
    if unknown:
        raise FinetuneError(f"unknown SNIPS intent {unknown[0]!r}", hint="one of " + ", ".join(INTENTS))
    tasks, examples = {}, []
    for i in intents:
        data = load_intent(data_dir, i)
        task = compile_task(slot_model(data))
        tasks[task.name] = task
        if split == "validate":
            rows = data.validate
        else:
            rows = data.train[:per_intent] if per_intent is not None and per_intent <= len(data.train) else \
                read_full(data_dir, i)[:per_intent]
        for n, (text, out) in enumerate(example_pairs(rows)):
            examples.append(TrainingExample(task.name, text, _validated(task, out), f"{i}:{split}:{n}", text,
                                            f"snips/{i}/{split}:{n}"))
    return _finish(tasks, examples, [])


def _finish(tasks: dict[str, CompiledTask], examples: list[TrainingExample],
            problems: list[tuple[str, int, str]]) -> TrainingSet:
    """Duplicates removed (first kept); an input seen with two different outputs keeps both (the team decides)."""
    seen, kept = set(), []
    for ex in examples:
        if (k := ex.key()) not in seen:
            seen.add(k)
            kept.append(ex)
    dropped = {"bad_lines": len(problems)} if problems else {}
    if len(kept) < len(examples):
        dropped["duplicates"] = len(examples) - len(kept)
    return TrainingSet(tasks, kept, dropped, problems)


def merge(sets: Iterable[TrainingSet]) -> TrainingSet:
    sets = list(sets)
    tasks: dict[str, CompiledTask] = {}
    for s in sets:
        tasks.update(s.tasks)
    out = _finish(tasks, [ex for s in sets for ex in s.examples], [])
    out.problems = [p for s in sets for p in s.problems]
    for s in sets:
        for k, v in s.dropped.items():
            out.dropped[k] = out.dropped.get(k, 0) + v
    return out


def split_held_out(examples: Sequence[TrainingExample], share: float, seed: int
                   ) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """(train, held out): whole groups go to the held-out side until it holds about `share` of the examples; at
    least one example stays on each side when there are two groups or more."""
    groups = sorted({ex.group for ex in examples})
    if share <= 0 or len(groups) < 2:
        return list(examples), []
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    want = max(1, round(share * len(examples)))
    sizes: dict[str, int] = {}
    for ex in examples:
        sizes[ex.group] = sizes.get(ex.group, 0) + 1
    held, n = set(), 0
    for g in order[:-1]:
        if n >= want:
            break
        held.add(g)
        n += sizes[g]
    return [ex for ex in examples if ex.group not in held], [ex for ex in examples if ex.group in held]
