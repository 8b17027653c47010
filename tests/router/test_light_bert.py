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


def test_the_embedder_uses_it_for_the_default_model(tmp_path):
    emb = Embedder(DEFAULT_MODEL, use_cache=False, show_progress=False)
    assert isinstance(emb.model, LightBert) and emb.dimension == 384
    assert np.allclose(np.linalg.norm(emb.encode(TEXTS[:2]), axis=1), 1.0, atol=1e-5)


def test_another_pipeline_is_not_claimed(tmp_path):
    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}]')
    assert not supported(tmp_path)
