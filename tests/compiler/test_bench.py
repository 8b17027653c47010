"""The MaskBench harness: the key-order search finds the grammar's own property order."""

from openfirst.compiler.bench import OrderSearch, candidates
from openfirst.compiler.grammar import GrammarCompiler
from openfirst.compiler.schema import SchemaOptions, normalise

# each service is matched through additionalProperties, with properties in the order a, b, c;
# `candidates` only reorders declared properties, so the nested object stays as written
SCHEMA = {"type": "object", "additionalProperties": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
    "additionalProperties": False}}


def _search(tokenizer, budget=20000):
    return OrderSearch(lambda text: tokenizer.hf.encode(text, add_special_tokens=False), budget=budget)


def test_order_search_accepts_the_same_value_in_another_key_order(tiny_backend):
    tok = tiny_backend.tokenizer_info()
    compiled = GrammarCompiler(tok).compile(*normalise(SCHEMA, SchemaOptions.faithful()))
    value = {"svc": {"c": True, "a": 1, "b": "x"}, "other": {"b": "y", "a": 2.0}}
    search = _search(tok)
    for text in candidates(value, SCHEMA):
        m = compiled.matcher()
        assert not all(m.consume_token(t) for t in tok.hf.encode(text, add_special_tokens=False)) \
            or not m.is_accepting()
    assert search.accepts(compiled.matcher(), value, SCHEMA)  # 2.0 is tried as 2 too


def test_order_search_rejects_what_no_order_makes_valid(tiny_backend):
    tok = tiny_backend.tokenizer_info()
    compiled = GrammarCompiler(tok).compile(*normalise(SCHEMA, SchemaOptions.faithful()))
    search = _search(tok)
    assert not search.accepts(compiled.matcher(), {"svc": {"c": True, "a": "not an int"}}, SCHEMA)
    assert not search.accepts(compiled.matcher(), {"svc": {"a": 1, "d": 1}}, SCHEMA)


def test_order_search_gives_up_within_its_budget(tiny_backend):
    tok = tiny_backend.tokenizer_info()
    compiled = GrammarCompiler(tok).compile(*normalise(SCHEMA, SchemaOptions.faithful()))
    search = _search(tok, budget=3)
    assert not search.accepts(compiled.matcher(), {"svc": {"c": True, "a": 1, "b": "x"}}, SCHEMA)
    assert search.left < 0
