"""The shared SQL database (SQLAlchemy: PostgreSQL in production, SQLite on one machine): every replica's
decisions and each key's durable spend, per settlement.

Schema: `openfirst_decisions` (one row per routed input: `record_id` primary key, the decision's id, time,
endpoint, task, target, decided_by, caller, replica, and the whole record as JSON), `openfirst_spend` (one row per
settled frontier cost: `settlement_id` primary key, key, UTC day, USD), `openfirst_schema` (the version). Created
on start when missing (CREATE TABLE IF NOT EXISTS); an older version is migrated by the steps in `MIGRATIONS`, in
order, inside one transaction; a newer one (a later openfirst wrote it) is refused at start."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from openfirst.core.errors import ConfigError
from openfirst.state.breaker import Breaker

SCHEMA_VERSION = 1
# version -> the statements that bring the schema from version - 1 to it (none yet: 1 is the first)
MIGRATIONS: dict[int, list[str]] = {}
DECISION_COLUMNS = ("id", "time", "endpoint", "task", "target", "decided_by", "caller")


def _tables(metadata: Any) -> dict[str, Any]:
    from sqlalchemy import Column, Float, Integer, String, Table, Text, Index

    decisions = Table("openfirst_decisions", metadata,
                      Column("record_id", String(64), primary_key=True), Column("id", String(256)),
                      Column("time", String(40)), Column("endpoint", String(32)), Column("task", String(64)),
                      Column("target", String(128)), Column("decided_by", String(16)), Column("caller", String(64)),
                      Column("replica", String(128)), Column("record", Text, nullable=False),
                      Index("openfirst_decisions_time", "time"))
    spend = Table("openfirst_spend", metadata, Column("settlement_id", String(64), primary_key=True),
                  Column("key", String(64), nullable=False), Column("day", String(10), nullable=False),
                  Column("usd", Float, nullable=False), Column("time", String(40)), Column("replica", String(128)),
                  Index("openfirst_spend_key_day", "key", "day"))
    schema = Table("openfirst_schema", metadata, Column("version", Integer, nullable=False))
    return {"decisions": decisions, "spend": spend, "schema": schema}


class Database:
    def __init__(self, url: str, breaker: Breaker, connect_timeout_s: float = 2.0):
        from sqlalchemy import MetaData, create_engine, exc, make_url

        try:
            parsed = make_url(url)
        except exc.ArgumentError:
            raise ConfigError("[state] database_url is not a database URL",
                              hint="postgresql+psycopg://user:password@host:5432/db or sqlite:///path/to.db") from None
        args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            args = {"connect_timeout": max(1, int(connect_timeout_s)), "options": "-c statement_timeout=10000"}
        elif parsed.get_backend_name() == "sqlite":
            args = {"timeout": 10}
        try:
            self.engine = create_engine(parsed, pool_pre_ping=True, connect_args=args)
        except (exc.NoSuchModuleError, ImportError) as e:
            raise ConfigError(f"[state] database_url: no driver for {parsed.drivername} ({e})",
                              hint="postgresql+psycopg:// (pip install 'openfirst[state]') or sqlite:///") from None
        self.dialect = parsed.get_backend_name()
        self.metadata = MetaData()
        self.tables = _tables(self.metadata)
        self.breaker = breaker
        self.errors = (exc.OperationalError, exc.InterfaceError, exc.DBAPIError, OSError)
        self._schema_ready = False

    def check(self) -> None:
        """At start: wrong credentials, a missing database or a newer schema are ConfigErrors; unreachable leaves
        it down (decisions wait on disk)."""
        from sqlalchemy import exc

        try:
            self.ensure_schema()
        except exc.OperationalError as e:
            text = str(e.orig if e.orig is not None else e).lower()
            if any(w in text for w in ("password authentication failed", "does not exist", "no password",
                                       "role", "permission denied", "unable to open database")):
                raise ConfigError(f"[state] database_url: the database refused the connection "
                                  f"({str(e.orig).strip().splitlines()[0]})") from None
            self.breaker.fail(f"{type(e).__name__}: {str(e.orig).strip().splitlines()[0] if e.orig else e}")

    def ensure_schema(self) -> None:
        """Create the tables where missing and migrate an older schema, once per process."""
        if self._schema_ready:
            return
        from sqlalchemy import select

        with self.engine.begin() as conn:
            self.metadata.create_all(conn, checkfirst=True)
            schema = self.tables["schema"]
            found = conn.execute(select(schema.c.version)).scalar()
            if found is None:
                conn.execute(schema.insert().values(version=SCHEMA_VERSION))
            elif found > SCHEMA_VERSION:
                raise ConfigError(f"the database's openfirst schema is version {found}; this openfirst knows "
                                  f"{SCHEMA_VERSION}", hint="upgrade openfirst on every replica")
            elif found < SCHEMA_VERSION:
                from sqlalchemy import text

                for version in range(found + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(version, []):
                        conn.execute(text(statement))
                conn.execute(schema.update().values(version=SCHEMA_VERSION))
        self._schema_ready = True

    def run(self, fn: Callable[[], Any]) -> Any:
        """fn() through the breaker (StoreDown where the database is down)."""
        return self.breaker.call(fn, self.errors)

    def insert(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Insert spooled rows, each once: a row whose id is already there is skipped. Returns rows sent."""
        by_table: dict[str, list[dict[str, Any]]] = {}
        for table, row in rows:
            by_table.setdefault(table, []).append(row)

        def go() -> int:
            self.ensure_schema()
            with self.engine.begin() as conn:
                for table, batch in by_table.items():
                    conn.execute(self._insert_ignoring_duplicates(self.tables[table]), batch)
            return sum(len(b) for b in by_table.values())
        return self.run(go) if by_table else 0

    def _insert_ignoring_duplicates(self, table: Any) -> Any:
        key = [c.name for c in table.primary_key.columns]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ConfigError(f"[state] database_url: {self.dialect} is not supported",
                              hint="PostgreSQL or SQLite")
        return insert(table).on_conflict_do_nothing(index_elements=key)

    def spend(self, key: str, day: str) -> float:
        """The key's durable spend on `day` (UTC)."""
        from sqlalchemy import func, select

        t = self.tables["spend"]

        def go() -> float:
            self.ensure_schema()
            with self.engine.connect() as conn:
                return float(conn.execute(select(func.coalesce(func.sum(t.c.usd), 0.0))
                                          .where(t.c.key == key, t.c.day == day)).scalar())
        return self.run(go)

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision, oldest first (the JSON records, as the JSONL log holds them)."""
        from sqlalchemy import select

        t = self.tables["decisions"]
        self.ensure_schema()
        with self.engine.connect() as conn:
            return [json.loads(r) for r in conn.execute(select(t.c.record).order_by(t.c.time, t.c.record_id)).scalars()]

    def close(self) -> None:
        self.engine.dispose()


def decision_row(record: dict[str, Any], record_id: str, replica: str) -> dict[str, Any]:
    """A rendered decision record as a row of `openfirst_decisions`."""
    row = {c: (None if record.get(c) is None else str(record[c])) for c in DECISION_COLUMNS}
    return {**row, "record_id": record_id, "replica": replica, "record": json.dumps(record, ensure_ascii=False)}


def is_database_url(source: str) -> bool:
    return "://" in str(source) and str(source).split("://", 1)[0].split("+")[0] in ("postgresql", "postgres",
                                                                                     "sqlite", "mysql")


def read_database_decisions(url: str) -> list[dict[str, Any]]:
    """`openfirst eval --decisions URL` and `finetune --from-decisions URL`: the decisions in the database."""
    from sqlalchemy import exc

    db = Database(url, Breaker("database", 1.0))
    try:
        return db.decisions()
    except exc.SQLAlchemyError as e:
        raise ConfigError(f"cannot read decisions from the database: {type(e).__name__}: "
                          f"{str(getattr(e, 'orig', e) or e).strip().splitlines()[0]}") from None
    finally:
        db.close()
