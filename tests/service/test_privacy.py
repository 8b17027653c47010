"""Privacy rules: PII detectors with checksums, custom regexes, the per-request flag, pinned tasks; the privacy
corpus (datasets/privacy/positives.jsonl) against ordinary traffic (RouteLLM GSM8K and MMLU queries)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from openfirst.service.privacy import PrivacyRules, views
from tests.helpers import KEYWORD_FORMS, PROBE_LEAKS

CORPUS = Path(__file__).resolve().parents[2] / "datasets" / "privacy" / "positives.jsonl"


@pytest.mark.parametrize("text, reason", [
    ("please write to jane.doe@example.co.uk today", "email"),
    ("call me on +44 20 7946 0958", "phone"),
    ("my number is (415) 555-2671", "phone"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432 is my account", "iban"),
    ("card 4111 1111 1111 1111 exp 12/28", "card"),
    ("card 5500-0000-0000-0004", "card"),
    # formats that used to get through (issue 11)
    ("ring me: 020 7946 0958", "phone"), ("Tel. 030 123456789", "phone"), ("appelez le 01 23 45 67 89", "phone"),
    ("iban de89 3704 0044 0532 0130 00", "iban"), ("DE89-3704-0044-0532-0130-00", "iban"),
    ("IBAN DE89370400440532013000 BIC: COBADEFFXXX", "iban"), ("DE89370400440532013000Bitte", "iban"),
    ("4111 1111 1111 1111 12/27", "card"), ("4111.1111.1111.1111", "card"),
    ("jörg.müller@beispiel.de", "email"), ("jane\u200b.doe@example.com", "email"),
    ("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "email"), ("jane dot doe at example dot com", "email"),
    ("jane (at) example (dot) com", "email"), ("jane%40example.com", "email"), ("jane&#64;example.com", "email"),
    ("my SSN is 123-45-6789", "ssn"), ("SSN 123456789", "ssn"), ("DNI 12345678Z", "national_id"),
])
def test_detectors_find_pii(text, reason):
    check = PrivacyRules().check(text)
    assert check.pinned and reason in check.reasons


@pytest.mark.parametrize("text", [
    "Natalia sold clips to 48 of her friends in April and half as many in May.",
    "order 12345678 shipped on 2024-03-01, invoice INV-2024-00017, total 1,234.50 EUR",
    "IBAN DE89370400440532013001",  # checksum fails
    "card 4111 1111 1111 1112",  # Luhn fails
    "the meeting is at 10:30 in room 4",
])
def test_ordinary_text_is_not_pinned(text):
    assert not PrivacyRules().check(text).pinned


def test_patterns_flag_and_tasks_and_no_matched_text_in_reasons():
    rules = PrivacyRules(detectors=["email"], patterns=[r"(?i)\bpatient\b"], pin_tasks=["hr"])
    check = rules.check(["first message", "the Patient's record"], flag=True, task="hr")
    assert check.reasons == ("request_flag", "task:hr", "pattern:0")
    assert rules.check("a@b.io").reasons == ("email",)
    assert not rules.check("call +44 20 7946 0958").pinned  # phone detector not enabled


def test_views_normalise_and_decode():
    assert views("ａ\u200bb") == ["ab"]
    assert views("x%40y &#64; z [at] w (dot) org")[-1] == "x@y@z@w.org"  # spaces around "@" joined too


def test_corpus_recall_per_entity_type_is_at_least_99_percent():
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    rules, total, found = PrivacyRules(), Counter(), Counter()
    for row in rows:
        total[row["type"]] += 1
        found[row["type"]] += row["type"] in rules.check(row["text"]).reasons
    assert len(rows) >= 200 and set(total) == {"email", "phone", "iban", "card", "ssn", "national_id"}
    for kind in total:
        assert found[kind] / total[kind] >= 0.99, (kind, found[kind], total[kind])


def pinned_share(queries):
    rules = PrivacyRules()
    return sum(rules.check(q).pinned for q in queries) / len(queries)


def test_ordinary_gsm8k_queries_are_not_pinned(data_dir):
    from openfirst.router.public_data import load_routellm_gsm8k

    assert pinned_share(load_routellm_gsm8k(data_dir).queries) <= 0.01


@pytest.mark.slow
def test_ordinary_mmlu_queries_are_rarely_pinned(data_dir):
    from openfirst.router.public_data import load_routellm_mmlu

    assert pinned_share(load_routellm_mmlu(data_dir).queries) <= 0.01


@pytest.mark.timeout(10)  # linear time: well under a second each; a quadratic regression fails, never hangs
@pytest.mark.parametrize("text", ["7" * 300_000, "a" * 300_000, "a@" * 150_000, "1-" * 150_000, "+1 " * 100_000,
                                  "%40" * 100_000, "DE89" * 75_000])
def test_detectors_take_linear_time_on_hostile_input(text):
    # a quadratic pattern would not finish here (300k characters -> ~1e11 steps); a text with more number-like
    # spans than the check budget is pinned (fails closed), never let through unchecked
    reasons = PrivacyRules(patterns=[r"secret"]).check(text).reasons
    assert reasons in {(), ("phone",), ("card",)} or "unverifiable" in reasons


@pytest.mark.parametrize("case", sorted(PROBE_LEAKS))
def test_each_class_the_probe_got_through_is_pinned(case):
    check = PrivacyRules().check(PROBE_LEAKS[case])
    assert check.pinned and "unverifiable" not in check.reasons, case


@pytest.mark.parametrize("text", sorted(KEYWORD_FORMS))
def test_keyword_rules_match_the_word_s_forms_and_digit_for_letter_spellings(text):
    rules = PrivacyRules(detectors=[], keywords=[KEYWORD_FORMS[text]])
    assert rules.check(text).reasons == ("keyword:0",)


def test_keyword_rules_do_not_match_other_words_and_refuse_what_is_not_a_word():
    rules = PrivacyRules(detectors=[], keywords=["salary", "patient", "diagnosis"])
    for text in ("salad and saltiness", "an impatient driver", "outpatients are elsewhere", "diagnostics run"):
        assert not rules.check(text).pinned, text
    with pytest.raises(ValueError, match="patterns"):
        PrivacyRules(keywords=[r"\d+"])


def test_a_card_number_split_across_two_messages_is_pinned_in_either_order():
    rules = PrivacyRules()
    assert rules.check(["my card is 4111 1111", "1111 1111, thanks"]).reasons == ("card",)
    assert rules.check(["1111 1111, thanks", "my card is 4111 1111"]).reasons == ("card",)
    assert not rules.check(["order 4111 1111", "ships in 3 days"]).pinned
    # as the pipeline passes a chat: the routed (last user) message first, then every message in order; the
    # routed message's repeat must not hide its junction with the message before it
    chat = ["1111 1111, thanks", "be helpful", "my card is 4111 1111", "1111 1111, thanks"]
    assert rules.check(chat).reasons == ("card",)


def test_typographic_dashes_and_spaced_at_signs_stay_quiet_on_ordinary_text():
    rules = PrivacyRules()
    for text in ("The meeting is 10\u201311 am on 2024\u201305\u201303", "email me @ work tomorrow",
                 "internationalization of the app", "version 2.0 @ 10.5 speed"):
        assert not rules.check(text).pinned, text
