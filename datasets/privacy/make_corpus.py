"""Writes datasets/privacy/positives.jsonl: personal data in everyday and obfuscated formats, one string per line
with its entity type. Seeded, so a rerun writes the same file. Every identifier is checked with the same
libraries the detectors use before it is written, so a miss is the detector's, not the corpus'.

    .venv/bin/python datasets/privacy/make_corpus.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn

OUT = Path(__file__).with_name("positives.jsonl")
RNG = random.Random(20261129)
SENTENCES = ["{}", "Please contact {} today.", "my details: {} (thanks!)", "Kunde: {}. Bitte zurückrufen.",
             "{} -- sent from my phone", "Refund to {}, BIC: COBADEFFXXX", "Réf. client {} ; merci",
             "ID={}&ref=42", "<td>{}</td>", "The value is {}."]


def wrap(text: str) -> str:
    return RNG.choice(SENTENCES).format(text)


def emails() -> list[str]:
    plain = ["jane.doe@example.com", "j.smith+invoices@mail.example.co.uk", "ops-team@sub.example.org",
             "o'brien@example.ie", "user_1987@example.io", "ANNA.MUELLER@EXAMPLE.DE"]
    unicode = ["jörg.müller@beispiel.de", "françois@exemple.fr", "用户@例子.公司", "θεός@παράδειγμα.ελ",
               "josé.garcía@correo.es", "пользователь@пример.рф"]
    out = []
    for e in plain:
        local, domain = e.split("@")
        name, _, tld = domain.rpartition(".")
        out += [e, wrap(e), f"mailto:{e}", e.replace("@", "\uff20").replace(".", "\uff0e"),  # full-width
                local + "\u200b@" + domain, local[:2] + "\u200d" + local[2:] + "@" + domain,  # zero-width
                f"{local} at {name} dot {tld}", f"{local} (at) {name} (dot) {tld}", f"{local} [at] {domain}",
                e.replace("@", "%40"), e.replace("@", "&#64;"), e.replace("@", "&commat;")]
    out += unicode + [wrap(e) for e in unicode]
    return out


def phones() -> list[str]:
    out = []
    fmt = phonenumbers.PhoneNumberFormat
    for region in ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "IN", "AU", "CA", "IE", "SE", "PL", "BR"):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            national = phonenumbers.format_number(number, fmt.NATIONAL)
            international = phonenumbers.format_number(number, fmt.INTERNATIONAL)
            e164 = phonenumbers.format_number(number, fmt.E164)
            out += [national, wrap(international), e164,
                    international.replace(" ", "-"), "00" + e164[1:], wrap(national.replace(" ", "."))]
    return out


def _iban_for(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def ibans() -> list[str]:
    known = ["DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
             "ES9121000418450200051332", "IT60X0542811101000000123456", "NL91ABNA0417164300",
             "CH9300762011623852957", "AT611904300234573201", "PL61109010140000071219812874"]
    made = [_iban_for("DE", "".join(RNG.choice("0123456789") for _ in range(18))) for _ in range(4)]
    made += [_iban_for("NL", "ABNA" + "".join(RNG.choice("0123456789") for _ in range(10))) for _ in range(2)]
    out = []
    for value in known + made:
        assert iban.is_valid(value), value
        spaced = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
        variants = [value, spaced, spaced.lower(), spaced.replace(" ", "-"), f"IBAN {spaced} BIC: DEUTDEFF",
                    f"IBAN: {value} Bitte überweisen", f"iban:{spaced.lower()} Danke"]
        out += RNG.sample(variants, 3)
    return out


def _luhn_number(prefix: str, length: int) -> str:
    body = prefix + "".join(RNG.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def cards() -> list[str]:
    out = []
    for prefix, length in [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16),
                           ("65", 16), ("4", 13), ("4", 19)]:
        for _ in range(2):
            n = _luhn_number(prefix, length)
            assert luhn.is_valid(n)
            groups = [n[i:i + 4] for i in range(0, len(n), 4)] if length != 15 else [n[:4], n[4:10], n[10:]]
            out += [n, " ".join(groups), "-".join(groups), wrap(".".join(groups)),
                    f"card {' '.join(groups)} 12/27", f"{n} exp 03/29"]
    return RNG.sample(out, 60)


def ssns() -> list[str]:
    out = []
    while len(out) < 25:
        area, group, serial = RNG.randint(1, 899), RNG.randint(1, 99), RNG.randint(1, 9999)
        digits = f"{area:03d}{group:02d}{serial:04d}"
        if not ssn.is_valid(digits):
            continue
        out.append(RNG.choice([f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", f"{digits[:3]} {digits[3:5]} {digits[5:]}",
                               f"SSN {digits}", wrap(f"{digits[:3]}-{digits[3:5]}-{digits[5:]}")]))
    return out


def national_ids() -> list[str]:
    out = []
    for _ in range(8):
        number = f"{RNG.randint(10_000_000, 99_999_999)}"
        value = number + dni.calc_check_digit(number)
        assert dni.is_valid(value)
        out.append(RNG.choice([value, f"{number}-{value[-1]}", wrap(value), f"DNI {number} {value[-1]}"]))
    for _ in range(5):
        body = RNG.choice("XYZ") + f"{RNG.randint(1_000_000, 9_999_999)}"
        value = body + nie.calc_check_digit(body)
        assert nie.is_valid(value)
        out.append(RNG.choice([value, wrap(value)]))
    for base in ["RSSMRA85T10A562", "BNCLRA72D45F205", "VRDGPP80A01H501", "MRNLCU90E12L219", "FRRMRC66C03G273"]:
        value = base + codicefiscale.calc_check_digit(base)
        assert codicefiscale.is_valid(value)
        out += [value, wrap(value.lower())]
    for _ in range(5):
        body = f"{RNG.choice('12')}{RNG.randint(40, 99):02d}{RNG.randint(1, 12):02d}{RNG.randint(1, 95):02d}" \
               f"{RNG.randint(1, 990):03d}{RNG.randint(1, 999):03d}"
        value = body + nir.calc_check_digits(body)
        assert nir.is_valid(value)
        out.append(RNG.choice([value, f"{value[0]} {value[1:3]} {value[3:5]} {value[5:7]} {value[7:10]} "
                                      f"{value[10:13]} {value[13:]}"]))
    for value in ["AB 12 34 56 C", "AB123456D", "ce 65 43 21 a", "JG103759A"]:
        out.append(wrap(value))
    return out


def main() -> None:
    rows = [{"type": kind, "text": text} for kind, texts in
            [("email", emails()), ("phone", phones()), ("iban", ibans()), ("card", cards()), ("ssn", ssns()),
             ("national_id", national_ids())] for text in texts]
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {k: sum(r["type"] == k for r in rows) for k in dict.fromkeys(r["type"] for r in rows)}
    print(f"wrote {len(rows)} strings to {OUT}: {counts}")


if __name__ == "__main__":
    main()
