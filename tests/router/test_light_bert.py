"""The plain-torch BERT encoder gives sentence-transformers' embeddings (real MiniLM)."""

import numpy as np
import pytest

from openfirst.router.embeddings import DEFAULT_MODEL, Embedder, resolve_model
from openfirst.router.light_bert import LightBert, supported

pytestmark = pytest.mark.slow  # the real embedding model

TEXTS = ["What is 2+2?", "A longer sentence about refunds, invoices; and UPPER case.", "é ü 😀 中文",
         "x " * 400, "", "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May."]


def test_the_light_encoder_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    path = resolve_model(DEFAULT_MODEL)
    assert supported(path)
    ours = LightBert(path).encode(TEXTS, batch_size=4)
    theirs = SentenceTransformer(path, device="cpu").encode(TEXTS, normalize_embeddings=True)
    assert ours.shape == theirs.shape and ((ours * theirs).sum(1) >= 0.99999).all()


def test_the_embedder_uses_it_for_a_few_texts_and_the_full_model_for_batches():
    """numpy starts fast but batches slowly (256 GSM8K prompts: 110 s against 7.7 s): only small calls use it."""
    emb = Embedder(DEFAULT_MODEL, use_cache=False, show_progress=False)
    few = emb.encode(TEXTS[:2])
    assert isinstance(emb.light(), LightBert) and emb._model is None and emb.dimension == 384  # nothing heavy loaded
    many = emb.encode(TEXTS[:2] + [f"query number {i}" for i in range(18)])  # 20 distinct texts: the full model
    assert emb._model is not None and np.allclose(many[:2], few, atol=1e-5)


def test_another_pipeline_is_not_claimed(tmp_path):
    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}]')
    assert not supported(tmp_path)
