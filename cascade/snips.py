"""SNIPS slot filling (the 2017 custom-intent-engines benchmark, CC0) as seven extraction tasks.

Each intent becomes one Pydantic model with one optional string field per slot (the value is an exact substring
of the utterance). Data: `snips/<Intent>/validate_<Intent>.json` (100 test utterances per intent),
`train_<Intent>.json` (the small training draws: in-context examples come from it) and `train_<Intent>_full.json`
(only read for the slot inventory). Scores are exact-match slot precision, recall and F1, as the published engines
were scored (Coucke et al. 2018, arXiv 1805.10190; their macro F1 at 70 training utterances is in `PUBLISHED`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from pydantic import BaseModel, Field, create_model

from openfirst.router.errors import DataError

INTENTS = ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook", "SearchCreativeWork",
           "SearchScreeningEvent")

# macro slot F1 at 70 training utterances, from the published per-slot metrics (../shared/datasets/README.md)
PUBLISHED = {
    "Snips NLU": [0.79, 0.71, 0.74, 0.48, 0.96, 0.88, 0.85],
    "Microsoft Luis": [0.62, 0.45, 0.40, 0.63, 0.89, 0.85, 0.83],
    "Facebook Wit": [0.53, 0.59, 0.48, 0.39, 0.95, 0.63, 0.80],
    "Google api.ai": [0.77, 0.60, 0.52, 0.41, 0.84, 0.80, 0.80],
    "Amazon Alexa": [0.67, 0.46, 0.56, 0.44, 0.80, 0.38, 0.56],
}


@dataclass(frozen=True)
class Utterance:
    intent: str
    text: str
    slots: tuple[tuple[str, str], ...]  # gold (slot, value) pairs in order; a slot may repeat

    def gold(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for slot, value in self.slots:
            out.setdefault(slot, []).append(value)
        return out


def _read(path: Path, intent: str) -> list[Utterance]:
    if not path.exists():
        raise DataError(f"missing SNIPS file {path}", hint="the SNIPS data lives in ../shared/datasets/snips")
    raw = json.loads(path.read_bytes().decode("utf-8", errors="replace"))  # some files are not valid UTF-8
    out = []
    for row in raw[intent]:
        text = "".join(chunk["text"] for chunk in row["data"])
        slots = tuple((c["entity"], c["text"].strip()) for c in row["data"] if "entity" in c)
        out.append(Utterance(intent, text.strip(), slots))
    return out


@dataclass
class IntentData:
    intent: str
    slots: list[str]  # every slot name the intent uses, most frequent first
    train: list[Utterance]
    validate: list[Utterance]


def load_intent(data_dir: Path, intent: str) -> IntentData:
    folder = Path(data_dir) / "snips" / intent
    train = _read(folder / f"train_{intent}.json", intent)
    validate = _read(folder / f"validate_{intent}.json", intent)
    full = _read(folder / f"train_{intent}_full.json", intent)
    counts = Counter(s for u in full + validate for s, _ in u.slots)
    return IntentData(intent, [s for s, _ in counts.most_common()], train, validate)


def read_full(data_dir: Path, intent: str) -> list[Utterance]:
    """`train_<Intent>_full.json`: about 2,000 training utterances (the small draws are the first 300 of
    `train_<Intent>.json`)."""
    return _read(Path(data_dir) / "snips" / intent / f"train_{intent}_full.json", intent)


def load(data_dir: Path, intents: Sequence[str] = INTENTS) -> list[IntentData]:
    return [load_intent(data_dir, i) for i in intents]


def slot_model(data: IntentData) -> type[BaseModel]:
    """One optional string field per slot; the docstring is the task's instructions."""
    fields: dict[str, Any] = {s: (Optional[str], Field(None, description=f"the {s.replace('_', ' ')} slot"))
                              for s in data.slots}
    model = create_model(data.intent, **fields)
    model.__doc__ = (f"Extract the slots of this {data.intent} request. Copy each value exactly as it is written "
                     "in the request; leave out the slots the request does not mention.")
    return model


_EDGE = ".,!?;:\"'()"


def word_spans(text: str) -> list[str]:
    """Every run of whole words of `text`, as written and with edge punctuation stripped: the values a slot
    can take when it is copied from the utterance."""
    words = text.split()
    out: dict[str, None] = {}
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            span = " ".join(words[i:j])
            for v in (span, span.strip(_EDGE)):
                if v:
                    out[v] = None
    return list(out)


def span_task(task: Any, text: str) -> Any:
    """The task with its grammar narrowed to values copied from `text` (each slot: a word span or absent);
    prompt and validation stay the task's own."""
    import dataclasses

    from openfirst.compiler.schema import SchemaOptions, normalise

    props = {name: {"anyOf": [{"$ref": "#/$defs/span"}, {"type": "null"}]} for name in task.json_schema["properties"]}
    schema = {"type": "object", "properties": props, "additionalProperties": False,
              "$defs": {"span": {"enum": word_spans(text)}}}
    norm, report = normalise(schema, SchemaOptions())
    return dataclasses.replace(task, schema=norm, report=report)


def example_pairs(utterances: Sequence[Utterance]) -> list[tuple[str, dict[str, str]]]:
    """(input, output) pairs for `compile_task(examples=...)`: the first value of each slot."""
    out = []
    for u in utterances:
        values: dict[str, str] = {}
        for slot, value in u.slots:
            values.setdefault(slot, value)
        out.append((u.text, values))
    return out


def covering_examples(train: Sequence[Utterance], k: int) -> list[Utterance]:
    """k fixed examples chosen greedily to cover the most slot names not yet shown (ties: fewer words)."""
    chosen: list[Utterance] = []
    seen: set[str] = set()
    pool = list(train)
    while pool and len(chosen) < k:
        best = max(pool, key=lambda u: (len({s for s, _ in u.slots} - seen), -len(u.text.split())))
        chosen.append(best)
        seen |= {s for s, _ in best.slots}
        pool.remove(best)
    return chosen


@dataclass
class SlotCounts:
    tp: Counter
    fp: Counter
    fn: Counter

    @classmethod
    def empty(cls) -> "SlotCounts":
        return cls(Counter(), Counter(), Counter())

    def add(self, predicted: dict[str, str], gold: dict[str, list[str]]) -> None:
        for slot, value in predicted.items():
            if value in gold.get(slot, []):
                self.tp[slot] += 1
            else:
                self.fp[slot] += 1
        for slot, values in gold.items():
            hit = predicted.get(slot) in values
            self.fn[slot] += len(values) - (1 if hit else 0)

    def f1(self, slot: str) -> float:
        tp, fp, fn = self.tp[slot], self.fp[slot], self.fn[slot]
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")

    def macro_f1(self) -> float:
        """Mean F1 over the slots that occur in the gold annotation (the published engines' convention)."""
        slots = [s for s in set(self.tp) | set(self.fn) if self.tp[s] + self.fn[s] > 0]
        return sum(self.f1(s) for s in slots) / len(slots) if slots else float("nan")

    def micro(self) -> dict[str, float]:
        tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def predicted_slots(output: Any) -> dict[str, str]:
    data = output.model_dump() if hasattr(output, "model_dump") else dict(output or {})
    return {k: v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}


def all_right(predicted: dict[str, str], gold: dict[str, list[str]]) -> bool:
    """The utterance-level outcome: every gold slot found, nothing else predicted."""
    return set(predicted) == set(gold) and all(predicted[s] in gold[s] for s in gold) and \
        all(len(v) == 1 for v in gold.values())
