"""Privacy rules: PII detectors with checksums, custom regexes, the per-request flag, pinned tasks."""

import pytest

from openfirst.service.privacy import PrivacyRules, luhn_ok


@pytest.mark.parametrize("text, reason", [
    ("please write to jane.doe@example.co.uk today", "email"),
    ("call me on +44 20 7946 0958", "phone"),
    ("my number is (415) 555-2671", "phone"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432 is my account", "iban"),
    ("card 4111 1111 1111 1111 exp 12/28", "card"),
    ("card 5500-0000-0000-0004", "card"),
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


def test_luhn():
    assert luhn_ok("4012888888881881") and not luhn_ok("4012888888881882") and not luhn_ok("1234")


@pytest.mark.timeout(10)  # linear time: well under a second each; a quadratic regression fails, never hangs
@pytest.mark.parametrize("text", ["7" * 300_000, "a" * 300_000, "a@" * 150_000, "1-" * 150_000, "+1 " * 100_000])
def test_detectors_take_linear_time_on_hostile_input(text):
    # a quadratic pattern would not finish here (300k characters -> ~1e11 steps)
    assert PrivacyRules(patterns=[r"secret"]).check(text).reasons in {(), ("phone",), ("card",)}
