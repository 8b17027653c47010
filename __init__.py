"""openfirst: run most LLM work on open models you host, and send to a frontier API only what they would get wrong.

The repository root is this package (see `pyproject.toml`): `openfirst.router` (router/), `openfirst.compiler`
(compiler/), `openfirst.cascade` (cascade/), `openfirst.pipeline` (pipeline/), `openfirst.service` (service/), `openfirst.core` (core/) and the console
script `openfirst.cli`. Importing `openfirst` is light: the router and compiler load on first use.

    import openfirst
    ticket = openfirst.extract("category, priority int", "I was charged twice for order 123")
"""

from __future__ import annotations

from importlib import metadata as _metadata

from openfirst.core.errors import OpenFirstError

try:
    __version__ = _metadata.version("openfirst")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["OpenFirstError", "Router", "Decision", "extract", "aextract", "Extractor", "__version__"]


def __getattr__(name: str):
    if name in ("Router", "Decision"):
        from openfirst.router import api

        return getattr(api, name)
    if name in ("extract", "aextract", "Extractor"):
        from openfirst.pipeline import extractor as extraction

        return getattr(extraction, name)
    raise AttributeError(f"module 'openfirst' has no attribute {name!r}")
