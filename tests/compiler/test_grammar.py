import pytest

from openfirst.compiler.errors import CompileTimeout
from openfirst.compiler.grammar import GrammarCompiler
from openfirst.compiler.schema import SchemaOptions, normalise
from openfirst.compiler.validation import make_validator


@pytest.fixture(scope="module")
def tokenizer(tiny_backend):
    return tiny_backend.tokenizer_info()


def compile_schema(compiler, schema):
    return compiler.compile(*normalise(schema, SchemaOptions.faithful()))


def accepts(compiled, text, tok) -> bool:
    m = compiled.matcher()
    for t in tok.hf.encode(text, add_special_tokens=False):
        if not m.consume_token(t):
            return False
    return m.is_accepting()


def test_grammar_enforces_schema(tokenizer):
    c = compile_schema(GrammarCompiler(tokenizer), {"type": "object", "properties": {"a": {"enum": ["x", "y"]}},
                                                    "required": ["a"], "additionalProperties": False})
    assert c.report.exact
    assert accepts(c, '{"a":"x"}', tokenizer)
    assert not accepts(c, '{"a":"z"}', tokenizer)
    assert not accepts(c, '{ "a": "x" }', tokenizer)  # whitespace is bounded: compact form only


def test_unimplemented_keywords_are_relaxed_and_post_validated(tokenizer):
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    c = compile_schema(GrammarCompiler(tokenizer), schema)
    assert not c.report.exact
    assert [(k, p) for k, p, _ in c.report.post_validated] == [("uniqueItems", "")]
    assert accepts(c, "[1,1]", tokenizer)  # the grammar is relaxed ...
    assert not make_validator(schema)([1, 1])  # ... and validation enforces it


def test_unknown_format_is_relaxed(tokenizer):
    c = compile_schema(GrammarCompiler(tokenizer), {"type": "string", "format": "made-up-format"})
    assert c.report.post_validated[0][0] == "format"


def test_memory_and_disk_cache(tokenizer, tmp_path):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "uniqueItems": True}
    first = compile_schema(GrammarCompiler(tokenizer, cache_dir=tmp_path), schema)
    assert not first.cached
    compiler = GrammarCompiler(tokenizer, cache_dir=tmp_path)
    again = compile_schema(compiler, schema)
    assert again.cached and again.grammar == first.grammar
    assert [k for k, _, _ in again.report.post_validated] == ["uniqueItems"]
    assert compile_schema(compiler, schema) is again  # in-memory hit
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_compile_time_limit_raises_and_process_stays_healthy(tokenizer):
    big = {"type": "object", "properties": {f"p{i}": {"type": "string", "pattern": f"^[a-z]{{{i % 7 + 1},40}}x{i}$"}
                                            for i in range(300)}}
    with pytest.raises(CompileTimeout):
        compile_schema(GrammarCompiler(tokenizer, timeout_s=1e-4), big)
    ok = compile_schema(GrammarCompiler(tokenizer), {"type": "integer"})
    assert accepts(ok, "42", tokenizer)
