"""openfirst router: predict per query whether the local open model succeeds."""

from openfirst.core.errors import OpenFirstError

__all__ = ["OpenFirstError", "Router", "Decision"]


def __getattr__(name: str):  # lazy: keep `import router` light (no torch, no sklearn)
    if name in ("Router", "Decision"):
        from openfirst.router import api

        return getattr(api, name)
    raise AttributeError(name)
