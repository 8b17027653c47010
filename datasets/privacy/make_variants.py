"""Write variants.jsonl: the positives' phone numbers, emails and card numbers in the forms a held-out probe of
`openfirst serve` got through the privacy rules (issue 22): typographic dashes, spaces around "@", IP-literal
domains, quoted local parts, base64 (standard and URL-safe), a card split across two chat messages (`parts`).

    python datasets/privacy/make_variants.py
"""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHES = {"en dash": "\u2013", "em dash": "\u2014", "non-breaking hyphen": "\u2011", "minus sign": "\u2212"}


def main() -> None:
    rng = random.Random(22)
    positives = [json.loads(x) for x in (HERE / "positives.jsonl").read_text().splitlines()]
    phones = [r["text"] for r in positives if r["type"] == "phone" and "-" in r["text"]]
    emails = [r["text"] for r in positives if r["type"] == "email" and re.fullmatch(r"[\w.+-]+@[\w.-]+", r["text"])]
    cards = [r["text"] for r in positives if r["type"] == "card" and re.fullmatch(r"[\d ]+", r["text"])]
    rows = []
    for name, dash in DASHES.items():
        for text in rng.sample(phones, 5):
            rows.append({"type": "phone", "class": f"phone, {name}", "text": text.replace("-", dash)})
    for text in rng.sample(emails, 5):
        local, domain = text.split("@")
        rows += [{"type": "email", "class": "email, spaces around @", "text": f"write to {local} @ {domain}"},
                 {"type": "email", "class": "email, quoted local part", "text": f'"{local} x"@{domain}'}]
    for i in range(5):
        ip = f"192.0.2.{rng.randint(1, 254)}"
        rows += [{"type": "email", "class": "email, IP-literal domain", "text": f"mail ops{i}@[{ip}]"},
                 {"type": "email", "class": "email, IP-literal domain", "text": f"mail ops{i}@{ip} today"}]
    for text in rng.sample(emails, 3) + rng.sample(phones, 3) + rng.sample(cards, 3):
        kind = "email" if "@" in text else "card" if text in cards else "phone"
        raw = f"contact: {text}".encode()
        rows += [{"type": kind, "class": "base64", "text": "payload " + base64.b64encode(raw).decode()},
                 {"type": kind, "class": "base64", "text": "data=" + base64.urlsafe_b64encode(raw).decode().rstrip("=")}]
    for text in rng.sample(cards, 5):
        digits = text.replace(" ", "")
        cut = rng.randint(4, len(digits) - 4)
        rows.append({"type": "card", "class": "card split across two messages",
                     "parts": [f"my card is {digits[:cut]}", f"{digits[cut:]}, why was it declined?"]})
    with open(HERE / "variants.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} variants")


if __name__ == "__main__":
    main()
