"""Privacy rules: a request that matches one is pinned to the local model and never leaves the network.

Detection runs on every string a request would send, after normalisation (`views`): Unicode NFKC (full-width
and other compatibility forms), zero-width and soft-hyphen characters removed, and a second view with URL and
HTML escapes decoded and spelled-out separators (`jane (at) example [dot] com`) joined. In each view every
candidate span is tried, not only the greedy match: a run of digit groups is cut into every window of
plausible length, and letters after an IBAN are dropped one at a time until its checksum holds or nothing is
left. Formats and checksums come from well-kept libraries: `phonenumbers` (Google's libphonenumber metadata)
for phone numbers in the configured regions, `python-stdnum` for IBANs, Luhn, US SSNs and national ids.

It fails closed: a request whose number-like spans would take more than `MAX_CANDIDATES` checks is pinned
(`unverifiable`) rather than let through unchecked. Only the names of the rules that matched are reported,
never the matched text.
"""

from __future__ import annotations

import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\ufeff\u00ad\u180e"),
                           None)
MAX_CANDIDATES = 20_000  # span checks (phone parses included) per request; past that: pinned as unverifiable
PHONE_REGIONS = ("US", "CA", "GB", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "ES", "PT", "IT", "SE", "FI", "PL",
                 "IN", "AU", "NZ", "BR", "MX", "JP", "ZA")
DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")

# an address: bounded parts, Unicode letters allowed, and a match only starts where a run of address characters
# starts (linear time: an unbounded `[...]+@` is quadratic on a long run without '@')
EMAIL = re.compile(r"(?<![\w.%+'-])[\w.%+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}(?![^\W\d_])")
AT = re.compile(r"\s*(?:[\[({<]\s*(?:at|@)\s*[\])}>]|\s(?:at|AT)\s)\s*")
DOT = re.compile(r"\s*(?:[\[({<]\s*(?:dot|\.)\s*[\])}>]|\s(?:dot|DOT)\s)\s*")
# a run of digit groups: separators are space, dot, dash, slash, parentheses; '+' may open it
NUMBER_RUN = re.compile(r"[+(]?\d[\d \t().\-/]*\d|\d")
GROUP = re.compile(r"\d+")
IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?=[ \-.]?[A-Za-z0-9])")
IBAN_CHAR = re.compile(r"[ \-.]?[A-Za-z0-9]")
SSN = re.compile(r"(?<![\d-])(\d{3})([ -])(\d{2})\2(\d{4})(?![\d-])|(?i:\bssn\b\W{0,3})(\d{9})(?!\d)")
ES_DNI = re.compile(r"(?<![A-Za-z0-9])([XYZxyz]?)[ -]?(\d{7,8})[ -]?([A-Za-z])(?![A-Za-z0-9])")
IT_CF = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z](?![A-Za-z0-9])")
FR_NIR = re.compile(r"(?<!\d)[12](?:[ ]?\d){12}[ ]?\d{2}(?!\d)")
UK_NINO = re.compile(r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                     r"[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D](?![A-Za-z0-9])", re.I)
CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6(?:011|5|4[4-9]|22)|35|30[0-5]|36|38)")


def views(text: str) -> list[str]:
    """The texts detection reads: NFKC without zero-width characters, and that with escapes and spelled-out
    separators decoded."""
    plain = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH)
    decoded = plain
    if "%" in decoded:
        decoded = urllib.parse.unquote(decoded, errors="replace")
    if "&" in decoded:
        decoded = html.unescape(decoded)
    decoded = DOT.sub(".", AT.sub("@", unicodedata.normalize("NFKC", decoded).translate(ZERO_WIDTH)))
    return [plain] if decoded == plain else [plain, decoded]


class Budget:
    """Counts span checks for one request; `spend` returns False once MAX_CANDIDATES is used up."""

    def __init__(self, limit: int = MAX_CANDIDATES):
        self.left = limit

    def spend(self, n: int = 1) -> bool:
        self.left -= n
        return self.left >= 0


def _digit_windows(run: str, min_digits: int, max_digits: int) -> Iterator[str]:
    """Every window of consecutive digit groups of `run` holding min..max digits (the text between them kept)."""
    groups = [(m.start(), m.end()) for m in GROUP.finditer(run)]
    for i, (start, _) in enumerate(groups):
        digits = 0
        for j in range(i, len(groups)):
            digits += groups[j][1] - groups[j][0]
            if digits > max_digits:
                break
            if digits >= min_digits:
                lead = start - 1 if start > 0 and run[start - 1] in "+(" else start
                yield run[lead:groups[j][1]]


def find_email(text: str, budget: Budget) -> bool:
    return EMAIL.search(text) is not None


def make_find_phone(regions: Sequence[str]) -> Callable[[str, Budget], bool]:
    import phonenumbers

    # a national number is read in a region only if it starts with that region's trunk prefix ("0" in most of
    # Europe) or with an area code in parentheses; NANP regions (prefix "1") and regions without one take it as
    # written: without this rule any 7-9 digit group (a date, an order number) is a valid number somewhere
    trunk = {r: (phonenumbers.PhoneMetadata.metadata_for_region(r).national_prefix or "") for r in regions}

    def valid(candidate: str, budget: Budget) -> bool:
        compact = candidate.lstrip("(")
        international = compact.startswith("+") or compact.startswith("00")
        if not international and DATE_LIKE.match(candidate):
            return False
        for region in ((None,) if international else regions):
            if (region is not None and trunk[region] not in ("", "1") and not compact.startswith(trunk[region])
                    and not candidate.startswith("(")):  # "(11) 2345-6789": an area code in parentheses
                continue
            if not budget.spend():
                return True  # fail closed
            try:
                number = phonenumbers.parse(("+" + compact[2:]) if compact.startswith("00") else candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False

    def find_phone(text: str, budget: Budget) -> bool:
        for run in NUMBER_RUN.finditer(text):
            for window in _digit_windows(run.group(0), 7, 15):
                if valid(window, budget):
                    return True
        return False

    return find_phone


def find_card(text: str, budget: Budget) -> bool:
    from stdnum import luhn

    for run in NUMBER_RUN.finditer(text):
        for window in _digit_windows(run.group(0), 13, 19):
            if not budget.spend():
                return True
            digits = re.sub(r"\D", "", window)
            if CARD_PREFIX.match(digits) and luhn.is_valid(digits):
                return True
    return False


def find_iban(text: str, budget: Budget) -> bool:
    from stdnum import iban

    for start in IBAN_START.finditer(text):
        pos, chars = start.end(), [start.group(0)]
        while len(chars) < 40 and (m := IBAN_CHAR.match(text, pos)):  # at most 34 characters, plus separators
            chars.append(m.group(0))
            pos = m.end()
        for end in range(len(chars), 0, -1):  # the longest candidate first, then shorter ones
            if not budget.spend():
                return True
            if iban.is_valid("".join(chars[:end])):
                return True
    return False


def find_ssn(text: str, budget: Budget) -> bool:
    from stdnum.us import ssn

    for m in SSN.finditer(text):
        if not budget.spend():
            return True
        digits = m.group(5) or m.group(1) + m.group(3) + m.group(4)
        if ssn.is_valid(digits):
            return True
    return False


def find_national_id(text: str, budget: Budget) -> bool:
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.it import codicefiscale

    for m in ES_DNI.finditer(text):
        if not budget.spend():
            return True
        number = m.group(2) + m.group(3).upper()
        if (m.group(1) and nie.is_valid(m.group(1).upper() + number)) or (not m.group(1) and dni.is_valid(number)):
            return True
    for m in IT_CF.finditer(text):
        if not budget.spend() or codicefiscale.is_valid(m.group(0).upper()):
            return True
    for m in FR_NIR.finditer(text):
        if not budget.spend() or nir.is_valid(m.group(0)):
            return True
    return UK_NINO.search(text) is not None


DETECTOR_NAMES = ("email", "phone", "iban", "card", "ssn", "national_id")


@dataclass(frozen=True)
class PrivacyCheck:
    pinned: bool
    reasons: tuple[str, ...]  # rule names: "email", "pattern:0", "request_flag", "task:<name>", "unverifiable"


class PrivacyRules:
    def __init__(self, detectors: Iterable[str] = DETECTOR_NAMES, patterns: Sequence[str] = (),
                 pin_tasks: Iterable[str] = (), phone_regions: Sequence[str] = PHONE_REGIONS,
                 max_candidates: int = MAX_CANDIDATES):
        detectors = list(detectors)
        unknown = set(detectors) - set(DETECTOR_NAMES)
        if unknown:
            raise ValueError(f"unknown privacy detectors {sorted(unknown)}; known: {list(DETECTOR_NAMES)}")
        finders: dict[str, Callable[[str, Budget], bool]] = {
            "email": find_email, "iban": find_iban, "card": find_card, "ssn": find_ssn,
            "national_id": find_national_id}
        if "phone" in detectors:
            finders["phone"] = make_find_phone(phone_regions)
        self.detectors = [(name, finders[name]) for name in detectors]
        self.patterns = [re.compile(p) for p in patterns]
        self.pin_tasks = frozenset(pin_tasks)
        self.max_candidates = max_candidates

    def check(self, texts: str | Sequence[str], flag: bool = False, task: str | None = None) -> PrivacyCheck:
        """Which rules `texts` (every string one request would send) trip."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        reasons: list[str] = []
        if flag:
            reasons.append("request_flag")
        if task is not None and task in self.pin_tasks:
            reasons.append(f"task:{task}")
        budget = Budget(self.max_candidates)
        seen = [v for t in dict.fromkeys(texts) for v in views(t)]  # a chat's routed message is also among its strings
        for name, find in self.detectors:
            if any(find(v, budget) for v in seen):
                reasons.append(name if budget.left >= 0 else "unverifiable")
        for i, pattern in enumerate(self.patterns):
            if any(pattern.search(v) for v in seen):
                reasons.append(f"pattern:{i}")
        return PrivacyCheck(bool(reasons), tuple(dict.fromkeys(reasons)))
