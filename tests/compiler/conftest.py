import pytest

from tests.compiler.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from compiler.backends.transformers_local import TransformersBackend

    return TransformersBackend.load(str(tiny_model_dir), device="cpu")
