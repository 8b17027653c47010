"""Loaders that turn the public data sets into canonical outcome logs.

RouteLLM (lm-sys/RouteLLM @ 0b64fdaf, Apache-2.0): local = Mixtral-8x7B-Instruct,
frontier = GPT-4-1106-preview, contaminated prompts dropped by exact prompt text,
as RouteLLM's own evals do.

- GSM8K and MMLU: scores are the True/False correctness columns.
- MT-Bench: a query is a question's first turn. Its score per model is the mean of
  the GPT-4 judge's 1-10 scores over both turns, mapped to [0, 1] by (s - 1) / 9.

LLMRouter (ulab-uiuc/LLMRouter @ 4e7a7969, MIT): train and test are merged and
grouped by question text, so the 119 questions present in both never straddle
folds (the re-split happens in cross-validation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from openfirst.core.errors import ConfigError
from openfirst.router.errors import DataError
from openfirst.router.records import ColumnMap, OutcomeLog, log_from_rows, read_log

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
LLMROUTER_DEFAULT_LOCAL = "llama-3.1-8b-instruct"
LLMROUTER_DEFAULT_FRONTIER = "llama-3.3-nemotron-super-49b-v1"
DATASETS = ("routellm-gsm8k", "routellm-mmlu", "routellm-mt-bench", "llmrouter")

if TYPE_CHECKING:
    from openfirst.router.multi_log import MultiOutcomeLog


def default_data_dir() -> Path:
    """`$OPENFIRST_DATA`, else `../shared/datasets` next to the project, else `./datasets-public`."""
    env = os.environ.get("OPENFIRST_DATA")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
    return shared if shared.is_dir() else Path("datasets-public")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(
            f"missing data file {path}",
            hint="set --data-dir / $OPENFIRST_DATA, or fetch it with `openfirst data download NAME`",
        )
    return path


def _contaminated(path: Path) -> set[str]:
    with open(_need(path), encoding="utf-8") as fh:
        return {json.loads(line)["eval_prompt"] for line in fh if line.strip()}


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with open(_need(path), encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def load_routellm_gsm8k(data_dir: Path | None = None) -> OutcomeLog:
    root = (data_dir or default_data_dir()) / "routellm" / "gsm8k"
    drop = _contaminated(root / "contaminated_prompts.jsonl")
    rows = (
        {"id": f"gsm8k-{i}", "query": r["prompt"], "local_score": r[WEAK], "frontier_score": r[STRONG]}
        for i, r in enumerate(_csv_rows(root / "gsm8k_responses.csv"))
        if r["prompt"] not in drop
    )
    return log_from_rows(rows, "routellm-gsm8k", require_frontier=True)


def load_routellm_mmlu(data_dir: Path | None = None) -> OutcomeLog:
    root = (data_dir or default_data_dir()) / "routellm" / "mmlu"
    drop = _contaminated(root / "contaminated_prompts.jsonl")
    files = sorted(_need(root / "responses").glob("mmlu_*.csv"))
    if len(files) != 57:
        raise DataError(f"expected 57 MMLU subject files in {root / 'responses'}, found {len(files)}")

    def rows():
        for f in files:
            subject = f.stem.removeprefix("mmlu_")
            for i, r in enumerate(_csv_rows(f)):
                if r["prompt"] not in drop:
                    yield {"id": f"mmlu-{subject}-{i}", "query": r["prompt"], "local_score": r[WEAK],
                           "frontier_score": r[STRONG]}

    return log_from_rows(rows(), "routellm-mmlu", require_frontier=True)


def load_routellm_mt_bench(data_dir: Path | None = None) -> OutcomeLog:
    root = (data_dir or default_data_dir()) / "routellm" / "mt_bench"
    drop = _contaminated(root / "contaminated_prompts.jsonl")
    with open(_need(root / "question.jsonl"), encoding="utf-8") as fh:
        questions = [json.loads(line) for line in fh if line.strip()]
    scores: dict[tuple[int, str], list[float]] = defaultdict(list)
    with open(_need(root / "judgements.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            j = json.loads(line)
            if j["score"] >= 1:  # FastChat writes -1 when the judge output could not be parsed
                scores[(j["question_id"], j["model"])].append(float(j["score"]))

    def mean01(qid: int, model: str) -> float:
        s = scores.get((qid, model))
        if not s:
            raise DataError(f"MT-Bench question {qid} has no judge score for {model}")
        return (sum(s) / len(s) - 1.0) / 9.0

    rows = (
        {"id": f"mt-bench-{q['question_id']}", "query": q["turns"][0], "local_score": mean01(q["question_id"], WEAK),
         "frontier_score": mean01(q["question_id"], STRONG)}
        for q in questions
        if q["turns"][0] not in drop
    )
    return log_from_rows(rows, "routellm-mt-bench", require_frontier=True)


def llmrouter_models(data_dir: Path | None = None) -> list[str]:
    root = (data_dir or default_data_dir()) / "llmrouter"
    with open(_need(root / "test.json"), encoding="utf-8") as fh:
        return sorted(json.load(fh)[0]["scores"])


def load_llmrouter(
    data_dir: Path | None = None,
    local_model: str = LLMROUTER_DEFAULT_LOCAL,
    frontier_model: str = LLMROUTER_DEFAULT_FRONTIER,
) -> OutcomeLog:
    root = (data_dir or default_data_dir()) / "llmrouter"
    models = llmrouter_models(data_dir)
    for m in (local_model, frontier_model):
        if m not in models:
            raise ConfigError(f"unknown LLMRouter model {m!r}", hint="choose from: " + ", ".join(models))

    def rows():
        for split in ("train", "test"):
            with open(_need(root / f"{split}.json"), encoding="utf-8") as fh:
                for i, r in enumerate(json.load(fh)):
                    yield {"id": f"llmrouter-{split}-{i}", "query": r["question"],
                           "local_score": r["scores"][local_model], "frontier_score": r["scores"][frontier_model]}

    return log_from_rows(rows(), f"llmrouter:{local_model}:{frontier_model}", require_frontier=True)


# an illustrative price per query for each LLMRouter model (the data set has no costs): 2e-5 USD per billion
# parameters, i.e. proportional to model size, as self-hosted or per-token API prices roughly are
LLMROUTER_PARAMS_B = {"llama3-chatqa-1.5-8b": 8.0, "qwen2.5-7b-instruct": 7.6, "llama3-chatqa-1.5-70b": 70.0,
                      "llama-3.1-nemotron-51b-instruct": 51.0, "mistral-7b-instruct-v0.3": 7.2, "gemma-2-9b-it": 9.2,
                      "llama-3.1-8b-instruct": 8.0, "codegemma-7b": 8.5, "llama-3.3-nemotron-super-49b-v1": 49.0}
LLMROUTER_USD_PER_QUERY = {m: 2e-5 * b for m, b in LLMROUTER_PARAMS_B.items()}


def load_llmrouter_all(data_dir: Path | None = None) -> "MultiOutcomeLog":
    """LLMRouter with every model's score (9 models), costs from LLMROUTER_USD_PER_QUERY; records of one question
    (119 occur in both files) share a group."""
    import hashlib

    from openfirst.router.multi_log import multi_log_from_rows

    root = (data_dir or default_data_dir()) / "llmrouter"

    def rows():
        for split in ("train", "test"):
            with open(_need(root / f"{split}.json"), encoding="utf-8") as fh:
                for i, r in enumerate(json.load(fh)):
                    group = hashlib.sha256(r["question"].encode("utf-8")).hexdigest()[:16]
                    yield {"id": f"llmrouter-{split}-{i}", "query": r["question"], "group": group,
                           "scores": r["scores"], "costs": {m: LLMROUTER_USD_PER_QUERY.get(m) for m in r["scores"]}}

    return multi_log_from_rows(rows(), "llmrouter-all")


def load_public(name: str, data_dir: Path | None = None, **kw) -> OutcomeLog:
    loaders = {
        "routellm-gsm8k": load_routellm_gsm8k,
        "routellm-mmlu": load_routellm_mmlu,
        "routellm-mt-bench": load_routellm_mt_bench,
        "llmrouter": load_llmrouter,
    }
    if name not in loaders:
        raise ConfigError(f"unknown data set {name!r}", hint="one of: " + ", ".join(DATASETS))
    return loaders[name](data_dir, **kw)


def is_public_name(item: str) -> bool:
    """`item` names a public data set (and no file of that name shadows it)."""
    return item in DATASETS and not Path(item).exists()


def load_log_or_public(item: str, data_dir: Path | None = None, *, columns: ColumnMap | None = None,
                       require_local: bool = True, skip_bad_lines: bool = False, **public_kw) -> OutcomeLog:
    """A public data set by name, or an outcome log file (JSONL/CSV)."""
    if is_public_name(item):
        return load_public(item, data_dir, **public_kw)
    if not Path(item).exists():
        import difflib

        close = difflib.get_close_matches(item, DATASETS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"{item}: no such file, and not a public data set",
                        hint=f"{hint}public data sets: {', '.join(DATASETS)}; or give the path of a JSONL/CSV log")
    return read_log(item, columns, require_local=require_local, skip_bad_lines=skip_bad_lines)
