"""Embeddings: the on-disk cache, the typed embedder spec, and (slow) the real MiniLM through the cache."""

import numpy as np
import pytest

from openfirst.core.errors import ConfigError
from openfirst.router.embeddings import DEFAULT_MODEL, EmbedderSpec, Embedder, EmbeddingCache


def test_cache_round_trip_and_sharing(tmp_path):
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    cache.put_many("m", [("h1", np.ones(3)), ("h2", np.zeros(3))])
    other = EmbeddingCache(tmp_path / "e.sqlite")  # another process would see the same rows
    got = other.get_many("m", ["h1", "h2", "h3", "h1"])
    assert set(got) == {"h1", "h2"} and got["h1"].dtype == np.float32
    assert other.get_many("another-model", ["h1"]) == {}


def test_embedder_spec_round_trip_and_refusals():
    spec = EmbedderSpec.from_config({"model": "m", "dimension": 8})
    assert spec.to_config() == {"model": "m", "dimension": 8, "normalized": True}
    assert EmbedderSpec.from_config(spec.to_config()) == spec
    for bad in (None, {"model": "", "dimension": 8}, {"model": "m", "dimension": 0}, {"model": "m"}):
        with pytest.raises(ConfigError):
            EmbedderSpec.from_config(bad)
    with pytest.raises(ConfigError):
        Embedder(batch_size=0)


@pytest.mark.slow
def test_real_minilm_embeds_once_then_reads_the_cache(tmp_path):
    emb = Embedder(DEFAULT_MODEL, cache=EmbeddingCache(tmp_path / "e.sqlite"), show_progress=False)
    a = emb.encode(["What is 2 + 2?", "Name a prime."])
    assert a.shape == (2, 384) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    again = Embedder(DEFAULT_MODEL, cache=EmbeddingCache(tmp_path / "e.sqlite"), show_progress=False)
    np.testing.assert_array_equal(again.encode(["Name a prime."]), a[1:])
    assert again._model is None  # served from the cache: the model never loaded


def test_model_input_is_bounded_and_leaves_ordinary_text_alone():
    emb = Embedder(DEFAULT_MODEL, use_cache=False)
    emb._model = type("Fake", (), {"max_seq_length": 4})()  # FAKE model: only its max_seq_length is read
    assert emb.model_input("a  b\n c") == "a  b\n c"  # short: as written
    long = ("word   " * 1000) + "tail"
    cut = emb.model_input(long)
    assert len(cut) <= 4 * 101 and cut.startswith("word word") and "  " not in cut
    huge = " " * 900_000 + "x " * 10
    assert emb.model_input(huge).startswith("x x")  # whitespace is skipped, not counted
