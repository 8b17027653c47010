"""SNIPS as extraction tasks: data loading, slot models, example choice and exact-match scoring."""

from openfirst.cascade.snips import (INTENTS, SlotCounts, all_right, covering_examples, example_pairs, load_intent,
                                     predicted_slots, slot_model)
from openfirst.compiler.task import compile_task
from tests.helpers import SHARED_DATA


def test_every_intent_loads_100_test_utterances_with_gold_substrings():
    for intent in INTENTS:
        d = load_intent(SHARED_DATA, intent)
        assert len(d.validate) == 100 and len(d.train) >= 70 and d.slots
        for u in d.validate:
            assert all(value in u.text for _, value in u.slots), u


def test_a_slot_model_has_one_optional_string_per_slot_and_examples_show_only_present_slots():
    d = load_intent(SHARED_DATA, "GetWeather")
    model = slot_model(d)
    assert set(model.model_fields) == set(d.slots) and model().model_dump() == {s: None for s in d.slots}
    shots = covering_examples(d.train, 5)
    covered = {s for u in shots for s, _ in u.slots}
    assert len(covered) >= 8  # greedy coverage of the 9 GetWeather slots
    task = compile_task(model, examples=example_pairs(shots))
    messages = task.messages("Is it windy in Boston?")
    assert "null" not in messages[2]["content"] and messages[-1]["content"] == "Is it windy in Boston?"


def test_exact_match_slot_scores():
    counts = SlotCounts.empty()
    counts.add({"city": "Boston", "state": "MA"}, {"city": ["Boston"], "timeRange": ["now"]})
    counts.add({"city": "Paris"}, {"city": ["Paris"]})
    assert counts.f1("city") == 1.0 and counts.f1("timeRange") == 0.0 and counts.f1("state") == 0.0
    assert counts.macro_f1() == 0.5  # over the slots present in the gold: city and timeRange
    assert counts.micro() == {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}


def test_an_utterance_is_right_only_with_every_slot_and_nothing_else():
    assert all_right({"city": "Oslo"}, {"city": ["Oslo"]})
    assert not all_right({"city": "Oslo", "state": "x"}, {"city": ["Oslo"]})
    assert not all_right({}, {"city": ["Oslo"]})
    assert all_right({}, {})
    assert predicted_slots({"city": " Oslo ", "state": None, "country": ""}) == {"city": "Oslo"}
