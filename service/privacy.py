"""Privacy rules: a request that matches one is pinned to the local model and never leaves the network.

Detectors: e-mail addresses, phone numbers, IBANs (mod-97 checked) and payment card numbers (Luhn
checked), plus the configured regexes and a per-request flag. Only the names of the rules that
matched are reported, never the matched text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

# bounded parts, and a match may only start where a run of address characters starts: linear time on any
# input (an unbounded `[...]+@` is quadratic on a long run without '@')
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
                   r"\.[A-Za-z]{2,24}(?![A-Za-z])")
# international (+CC ...) or grouped national numbers, 8-15 digits in all
PHONE = re.compile(r"(?<![\w+])(?:\+|00)\d{1,3}[\s.-]?(?:\(?\d{1,4}\)?[\s.-]?){2,5}\d{2,4}(?!\w)"
                   r"|(?<![\w+])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone_ok(match: str) -> bool:
    return 8 <= len(_digits(match)) <= 15


def _iban_ok(match: str) -> bool:
    s = match.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in _digits(number)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


DETECTORS: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "email": (EMAIL, lambda m: True),
    "phone": (PHONE, _phone_ok),
    "iban": (IBAN, _iban_ok),
    "card": (CARD, luhn_ok),
}


@dataclass(frozen=True)
class PrivacyCheck:
    pinned: bool
    reasons: tuple[str, ...]  # rule names: "email", "pattern:0", "request_flag", "task:<name>"


class PrivacyRules:
    def __init__(self, detectors: Iterable[str] = DETECTORS, patterns: Sequence[str] = (),
                 pin_tasks: Iterable[str] = ()):
        unknown = set(detectors) - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown privacy detectors {sorted(unknown)}")
        self.detectors = [(name, *DETECTORS[name]) for name in detectors]
        self.patterns = [re.compile(p) for p in patterns]
        self.pin_tasks = frozenset(pin_tasks)

    def check(self, texts: str | Sequence[str], flag: bool = False, task: str | None = None) -> PrivacyCheck:
        """Which rules `texts` (one request's texts, e.g. every message of a chat) trip."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        reasons: list[str] = []
        if flag:
            reasons.append("request_flag")
        if task is not None and task in self.pin_tasks:
            reasons.append(f"task:{task}")
        for name, pattern, ok in self.detectors:
            if any(ok(m.group(0)) for t in texts for m in pattern.finditer(t)):
                reasons.append(name)
        for i, pattern in enumerate(self.patterns):
            if any(pattern.search(t) for t in texts):
                reasons.append(f"pattern:{i}")
        return PrivacyCheck(bool(reasons), tuple(reasons))
