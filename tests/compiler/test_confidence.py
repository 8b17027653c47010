"""Per-field confidence: leaf spans, token alignment, aggregation, and a local result that carries it."""

import math

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.confidence import aggregate, confidence, leaf_spans, pieces_from_ids
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task

DOC = '{"a":"Boéton","b":{"c":[1,2.5,null]},"d":true}'
PIECES = ['{"', 'a', '":"', 'Bo', 'éton', '","', 'b":{"c":[', '1', ',2', '.5', ',null', ']}', ',"d":', 'true', '}']


def test_every_leaf_has_its_span_from_key_to_value_end():
    spans = {leaf.path: DOC[leaf.start:leaf.end] for leaf in leaf_spans(DOC)}
    assert spans == {"a": '"a":"Boéton"', "b.c[0]": "1", "b.c[1]": "2.5", "b.c[2]": "null", "d": '"d":true'}
    assert [leaf.path for leaf in leaf_spans('{ "x" : [ ] , "y" : "q" }')] == ["y"]


def test_a_field_takes_the_tokens_overlapping_it_and_min_is_not_penalised_by_length():
    lps = [0, -0.1, 0, -0.5, -1.0, 0, 0, -2.0, 0, 0, -0.3, 0, 0, -0.01, 0]
    c = confidence(DOC, PIECES, lps, "min")
    assert c.fields["a"] == pytest.approx(math.exp(-1.0))  # 'Bo' and 'éton' and the key's tokens
    assert c.fields["b.c[0]"] == pytest.approx(math.exp(-2.0)) and c.fields["b.c[1]"] == pytest.approx(1.0)
    assert c.overall == pytest.approx(math.exp(-2.0))
    long_text, long_pieces, long_lps = '{"s":"aaaa"}', ['{"', 's', '":"', 'a', 'a', 'a', 'a', '"}'], [0, 0, 0] + [-0.1] * 4 + [0]
    short = ('{"s":"a"}', ['{"', 's', '":"', 'a', '"}'], [0, 0, 0, -0.1, 0])
    assert confidence(long_text, long_pieces, long_lps, "min").fields["s"] == pytest.approx(
        confidence(*short, "min").fields["s"])  # min: length-free
    product_ratio = confidence(*short, "product").fields["s"] / confidence(long_text, long_pieces, long_lps,
                                                                            "product").fields["s"]
    mean_ratio = confidence(*short, "mean").fields["s"] / confidence(long_text, long_pieces, long_lps,
                                                                     "mean").fields["s"]
    assert product_ratio > 1.3 and mean_ratio < 1.05  # product punishes the 4-token value, mean barely


@pytest.mark.parametrize("how,expected", [("min", math.exp(-2)), ("mean", math.exp(-1)), ("first", 1.0),
                                          ("product", math.exp(-2))])
def test_aggregations(how, expected):
    assert aggregate([0.0, -2.0], how) == pytest.approx(expected)


def test_no_usable_log_probabilities_gives_none_not_a_guess():
    assert confidence(DOC, None, None) is None
    assert confidence(DOC, PIECES[:-1], [0.0] * 14) is None  # pieces do not spell the text
    assert confidence(DOC, PIECES, [0.0] * 3) is None
    assert confidence("not json", ["not json"], [0.0]) is None


def test_pieces_from_ids_gives_a_split_character_to_the_token_completing_it():
    raw = "é!".encode()  # two bytes for é, then '!'
    tokens = [raw[0:1], raw[1:2], raw[2:3]]
    pieces = pieces_from_ids([0, 1, 2], lambda ids: b"".join(tokens[i] for i in ids).decode("utf-8", "replace"))
    assert pieces == ["", "é", "!"]


class Ticket(BaseModel):
    """Classify the ticket."""

    category: str = Field(max_length=12)
    priority: int = Field(ge=1, le=5)


def test_a_local_result_carries_per_field_confidence(tiny_backend):
    import torch

    torch.manual_seed(0)
    results = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=80, temperature=1.0,
                                                                         confidence="min")).run_many(["x"] * 4)
    done = [r for r in results if isinstance(r, Result)]
    assert done
    for r in done:
        assert set(r.confidence.fields) == {"category", "priority"} and r.confidence.masked
        assert 0.0 < r.confidence.overall <= min(r.confidence.fields.values()) <= 1.0


def test_an_engine_without_log_probabilities_says_so_with_none():
    r = Program(compile_task(Ticket), ScriptedBackend(['{"category":"a","priority":2}'])).run("x")
    assert r.confidence is None
