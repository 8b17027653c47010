"""Privacy rules: a request that matches one is pinned to the local model and never leaves the network.

Detection runs on every string a request would send, and on all of them joined (a card number split across two
chat messages), after normalisation (`views`): Unicode NFKC (full-width and other compatibility forms),
zero-width and soft-hyphen characters removed, typographic dashes read as "-", and a second view with URL and
HTML escapes decoded, spelled-out separators (`jane (at) example [dot] com`) and spaces around "@" joined; text
sent base64-encoded is decoded and read too. Emails include quoted local parts and IP-literal domains. Keyword
rules (`keywords`) match a word's forms (plural, possessive, derived nouns) and digit-for-letter spellings
(`s4l4ry`); raw regexes (`patterns`) match as written. The threat model: docs/privacy.md. In each view every
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
# typographic dashes and minus signs (hyphen, non-breaking hyphen, figure, en and em dash, bar, minus, small and
# full-width forms) read as "-", so "555–867–5309" is the number it is
DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\ufe63\uff0d"), "-")
MAX_CANDIDATES = 20_000  # span checks (phone parses included) per request; past that: pinned as unverifiable
PHONE_REGIONS = ("US", "CA", "GB", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "ES", "PT", "IT", "SE", "FI", "PL",
                 "IN", "AU", "NZ", "BR", "MX", "JP", "ZA")
DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")

# an address: bounded parts, Unicode letters allowed, and a match only starts where a run of address characters
# starts (linear time: an unbounded `[...]+@` is quadratic on a long run without '@')
EMAIL = re.compile(r"(?<![\w.%+'-])[\w.%+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}(?![^\W\d_])")
# RFC 5321's other forms: a quoted local part ("john doe"@example.com), an IP-literal domain (a@[192.0.2.1],
# a@[IPv6:2001:db8::1], and the bracketless a@192.0.2.1)
EMAIL_QUOTED = re.compile(r'"[^"\r\n]{1,64}"@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}(?![^\W\d_])')
EMAIL_IP = re.compile(r"(?<![\w.%+'-])[\w.%+'-]{1,64}@(?:\[(?:IPv6:[0-9A-Fa-f:.]{2,45}|(?:\d{1,3}\.){3}\d{1,3})\]"
                      r"|(?:\d{1,3}\.){3}\d{1,3}(?![\d.]))", re.I)
AT = re.compile(r"\s*(?:[\[({<]\s*(?:at|@)\s*[\])}>]|\s(?:at|AT)\s)\s*|[ \t]+@[ \t]*|[ \t]*@[ \t]+")
BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
MAX_DECODED = 1_000_000  # base64 characters decoded per text, at most
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


def views(text: str, depth: int = 2) -> list[str]:
    """The texts detection reads: NFKC without zero-width characters and with plain dashes; that with escapes,
    spelled-out separators and spaces around "@" decoded; and the text of base64 runs (`depth` levels deep)."""
    plain = _normal(text)
    decoded = plain
    if "%" in decoded:
        decoded = urllib.parse.unquote(decoded, errors="replace")
    if "&" in decoded:
        decoded = html.unescape(decoded)
    decoded = DOT.sub(".", AT.sub("@", _normal(decoded)))
    out = [plain] if decoded == plain else [plain, decoded]
    if depth > 0:
        out += [v for inner in base64_texts(plain) for v in views(inner, depth - 1)]
    return out


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH).translate(DASHES)


def base64_texts(text: str) -> list[str]:
    """The text inside base64 runs (standard or URL-safe, padding optional) that decode to UTF-8 text; at most
    MAX_DECODED characters of runs are decoded per text (linear time)."""
    import base64
    import binascii

    out, left = [], MAX_DECODED
    for m in BASE64.finditer(text):
        run = m.group(0).rstrip("=")
        left -= len(run)
        if left < 0:
            break
        try:
            raw = base64.b64decode(run.replace("-", "+").replace("_", "/") + "=" * (-len(run) % 4), validate=True)
            inner = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if inner.isprintable() or all(c.isprintable() or c.isspace() for c in inner):
            out.append(inner)
    return out


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
    return any(p.search(text) is not None for p in (EMAIL, EMAIL_QUOTED, EMAIL_IP))


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
# digit-for-letter (and symbol-for-letter) spellings a keyword rule also matches
LOOKALIKES = {"a": "a4@", "b": "b8", "e": "e3", "g": "g9", "i": "i1!|l", "l": "l1|i", "o": "o0", "s": "s5$",
              "t": "t7+", "z": "z2"}
# word forms: plural, possessive, and the common derivational endings (confidential -> confidentiality)
SUFFIXES = r"(?:s|es|'s|s'|\u2019s|ed|ing|er|ers|ment|ments|ness|ity|ities|ion|ions|al|ly)?"
EDGE = 64  # characters either side of a junction between two strings of one request


def keyword_pattern(word: str) -> re.Pattern[str]:
    """A keyword rule: `word` in its forms (plural, possessive, derived nouns; a final y as in salary ->
    salaries) and digit-for-letter spellings (s4l4ry), case-insensitive, as a whole word."""
    w = word.strip().lower()
    if not w or not re.fullmatch(r"[^\W\d_][\w' -]*", w):
        raise ValueError(f"keyword {word!r} must be a word (letters first): use `patterns` for regexes")
    stem, tail = w, ""
    if w.endswith("y") and len(w) > 2:  # salary -> salaries
        stem, tail = w[:-1], "(?:y|ies|ied)"
    elif w.endswith("is") and len(w) > 3:  # diagnosis -> diagnoses
        stem, tail = w[:-2], "(?:is|es)"
    body = "".join(f"[{re.escape(LOOKALIKES[c])}]" if c in LOOKALIKES else re.escape(c) for c in stem)
    return re.compile(rf"(?<![^\W_]){body}{tail}{SUFFIXES}(?![^\W_])", re.I)


def junctions(texts: Sequence[str]) -> list[str]:
    """Where two strings of one request meet, both ways round (a card number split across two chat messages):
    the end of one and the start of the next, EDGE characters each."""
    out = []
    for a, b in zip(texts, texts[1:]):
        out += [f"{a[-EDGE:]} {b[:EDGE]}", f"{b[-EDGE:]} {a[:EDGE]}"]
    return out


@dataclass(frozen=True)
class PrivacyCheck:
    pinned: bool
    reasons: tuple[str, ...]  # rule names: "email", "pattern:0", "keyword:0", "request_flag", "task:<name>",
    #                           "unverifiable"


class PrivacyRules:
    def __init__(self, detectors: Iterable[str] = DETECTOR_NAMES, patterns: Sequence[str] = (),
                 pin_tasks: Iterable[str] = (), phone_regions: Sequence[str] = PHONE_REGIONS,
                 max_candidates: int = MAX_CANDIDATES, keywords: Sequence[str] = ()):
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
        self.keywords = [keyword_pattern(k) for k in keywords]
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
        # junctions in the order given (a chat's routed message comes first and again in its place); each text read
        # once (the routed message is also among the request's strings)
        seen = [v for t in [*dict.fromkeys(texts), *junctions(texts)] for v in views(t)]
        for name, find in self.detectors:
            if any(find(v, budget) for v in seen):
                reasons.append(name if budget.left >= 0 else "unverifiable")
        for i, pattern in enumerate(self.patterns):
            if any(pattern.search(v) for v in seen):
                reasons.append(f"pattern:{i}")
        for i, pattern in enumerate(self.keywords):
            if any(pattern.search(v) for v in seen):
                reasons.append(f"keyword:{i}")
        return PrivacyCheck(bool(reasons), tuple(dict.fromkeys(reasons)))
