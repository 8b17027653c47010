"""The router's own errors (the root and the shared ones live in `openfirst.core.errors`)."""

from __future__ import annotations

from openfirst.core.errors import OpenFirstError


class DataError(OpenFirstError):
    """A public data set is missing, incomplete or fails its checksum."""


class ArtifactError(OpenFirstError):
    """A router artifact is missing, tampered with or incompatible."""
