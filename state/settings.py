"""`[state]` in openfirst.toml: where replicas share their state. Nothing set: everything is per process, as
before. `OPENFIRST_STATE__REDIS_URL` / `OPENFIRST_STATE__DATABASE_URL` (or `REDIS_URL` / `DATABASE_URL`) set them
from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis_url: SecretStr | None = Field(None, description="redis://[:password@]host:port/db: per-key rate limits "
                                        "and frontier budgets shared by every replica")
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL (postgresql+psycopg://..., "
                                           "sqlite:///file.db): every replica's decisions and durable daily spend")
    timeout_s: float = Field(0.25, gt=0.0, le=30.0, description="a store slower than this is down for the request")
    retry_after_s: float = Field(1.0, gt=0.0, le=300.0, description="a store found down is not tried again for "
                                 "this long (requests meanwhile take the fail-closed path at once)")
    fallback_rate_fraction: float | None = Field(None, gt=0.0, le=1.0, description="with Redis down, each "
                                                 "replica grants this share of a key's rate limit; None: 1 / the "
                                                 "replicas alive when Redis last counted them (1/4 before any count)")
    spool_dir: Path | None = Field(None, description="where decisions and spend wait on local disk for the "
                                   "database (default: the user's cache folder)")
    flush_interval_s: float = Field(0.2, gt=0.0, le=60.0, description="how often the spool is written to the "
                                    "database")
    replica: str | None = Field(None, max_length=128, description="this replica's name in the database (default: "
                                "host name and process id)")

    def resolved(self) -> "StateSettings":
        """With `REDIS_URL` / `DATABASE_URL` from the environment where the file and OPENFIRST_STATE__* set none."""
        update = {}
        for field, env in (("redis_url", "REDIS_URL"), ("database_url", "DATABASE_URL")):
            if getattr(self, field) is None and os.environ.get(env):
                update[field] = SecretStr(os.environ[env])
        return self.model_copy(update=update) if update else self

    @property
    def shared(self) -> bool:
        return self.redis_url is not None or self.database_url is not None
