"""Cheap text features beside the sentence embedding.

Each feature group is named, so the artifact records exactly which were used and
the router recomputes the same ones at routing time.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"[.!?](?:\s|$)")
_FRACTION = re.compile(r"\d\s*/\s*\d")
# connectives and quantity words: how many steps and comparisons a question chains together
_STEP_WORDS = re.compile(
    r"\b(?:and|then|after|before|if|each|per|every|more|less|than|times|half|twice)\b", re.IGNORECASE
)

TEXT_STAT_NAMES = (
    "log_chars", "log_words", "log_numbers", "log_distinct_numbers", "log_max_number", "sentences",
    "newlines", "question_marks", "mean_word_len", "digit_frac", "upper_frac", "symbol_frac",
    "percent_signs", "currency_signs", "decimals", "fractions", "math_operators", "commas", "long_words",
    "step_words", "numbers_per_word",
)
FEATURE_GROUPS = ("embedding", "text_stats")


def text_stats(text: str) -> list[float]:
    """Length and surface statistics of one query (length is RouteLLM's strongest cheap baseline)."""
    n = max(len(text), 1)
    words = _WORD.findall(text)
    numbers = _NUMBER.findall(text)
    values = []
    for num in numbers:
        try:
            value = float(num.replace(",", ""))
        except ValueError:
            continue
        if math.isfinite(value):  # a run of 400+ digits overflows to inf
            values.append(value)
    digits = sum(ch.isdigit() for ch in text)
    upper = sum(ch.isupper() for ch in text)
    symbols = sum(not ch.isalnum() and not ch.isspace() for ch in text)
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        math.log1p(len(numbers)),
        math.log1p(len(set(numbers))),
        math.log1p(max(values, default=0.0)) if values else 0.0,
        float(len(_SENTENCE.findall(text))),
        float(text.count("\n")),
        float(text.count("?")),
        (sum(len(w) for w in words) / len(words)) if words else 0.0,
        digits / n,
        upper / n,
        symbols / n,
        float(text.count("%")),
        float(sum(text.count(c) for c in "$€£¥")),
        float(sum("." in num for num in numbers)),
        float(len(_FRACTION.findall(text))),
        float(sum(ch in "+-*/=^" for ch in text)),
        float(text.count(",")),
        float(sum(len(w) > 8 for w in text.split())),
        float(len(_STEP_WORDS.findall(text))),
        len(numbers) / max(len(words), 1),
    ]


def text_stat_matrix(texts: Sequence[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, len(TEXT_STAT_NAMES)))
    # finite whatever the text: a non-finite feature would make every head's score NaN
    return np.nan_to_num(np.asarray([text_stats(t) for t in texts], dtype=np.float64), posinf=1e12, neginf=-1e12)


def build_features(groups: Sequence[str], embeddings: np.ndarray, texts: Sequence[str],
                   stats: np.ndarray | None = None) -> np.ndarray:
    """Concatenate the named feature groups, in FEATURE_GROUPS order (`stats`: precomputed text stats)."""
    parts = []
    for g in FEATURE_GROUPS:
        if g not in groups:
            continue
        if g == "embedding":
            parts.append(np.asarray(embeddings, dtype=np.float64))
        else:
            parts.append(text_stat_matrix(texts) if stats is None else stats)
    unknown = set(groups) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature group(s): {sorted(unknown)}; known: {list(FEATURE_GROUPS)}")
    return np.hstack(parts)
