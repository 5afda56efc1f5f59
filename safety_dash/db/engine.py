"""Engines, sessions and migrations.

One engine per database URL and process. SQLite gets foreign keys, WAL and a busy timeout so a scheduler
process and web workers can share the file; PostgreSQL is used as it comes, with a connect timeout. Every engine
pings a pooled connection before handing it out, so a database that comes back is used again by itself.

Each process keeps its own pool of connections: ``SAFETY_DASH_DB_POOL_SIZE`` kept open, up to
``SAFETY_DASH_DB_MAX_OVERFLOW`` more at busy times, and a request waits ``SAFETY_DASH_DB_POOL_TIMEOUT`` seconds for
one (the dashboard then answers 503). Under gunicorn every worker has its own pool (a worker's threads share it),
so the database sees up to workers x (size + overflow) connections from the web, plus the scheduler's.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from safety_dash.config import load_pool_options
from safety_dash.db.errors import DatabaseUnavailable, mask_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
CONNECT_TIMEOUT_SECONDS = 10


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``, created on first use."""
    if url not in _ENGINES:
        _ENGINES[url] = _create_engine(url)
    return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    """An engine that tests each pooled connection before use (pool pre-ping), so a database that went away and
    came back is used again without a restart; a URL that cannot be used raises :class:`DatabaseUnavailable`."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except Exception as error:  # ArgumentError, or ValueError for a port that is not a number
        raise _unusable_url(url, error) from error
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                in_the_way = isinstance(error, (FileExistsError, NotADirectoryError))
                reason = "a file stands where a folder is needed" if in_the_way else (error.strerror or str(error))
                raise DatabaseUnavailable(
                    f"cannot create the folder {folder} of the database at {mask_url(url)}: {reason.lower()}", url
                ) from error
        in_memory = not parsed.database or parsed.database == ":memory:" or "mode=memory" in str(parsed)
        pool = {} if in_memory else _pool_options()  # an in-memory database has one connection per thread
        engine = _create(url, pool_pre_ping=True, connect_args={"timeout": 60}, **pool)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args = {}
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        if "connect_timeout" not in parsed.query:  # a host that drops packets must not hang a command for minutes
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return _create(url, pool_pre_ping=True, connect_args=connect_args, **_pool_options())


def _pool_options() -> dict:
    """SQLAlchemy's pool arguments from the settings (SAFETY_DASH_DB_POOL_SIZE, _MAX_OVERFLOW, _POOL_TIMEOUT)."""
    options = load_pool_options()
    return {"pool_size": options.size, "max_overflow": options.max_overflow, "pool_timeout": options.timeout}


def _create(url: str, **options) -> Engine:
    try:
        return create_engine(url, **options)
    except (ArgumentError, ValueError, ImportError) as error:  # unknown dialect or driver, bad query argument
        raise _unusable_url(url, error) from error


def _unusable_url(url: str, error: Exception) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"the database URL {mask_url(url)!r} (SAFETY_DASH_DATABASE_URL) cannot be used: {error}; write it as "
        "postgresql+psycopg://user@host:5432/database or sqlite:////absolute/path/safety_dash.db",
        url,
    )


def dispose_engine(url: str) -> None:
    """Close the pooled connections of ``url``'s engine and forget it (tests, forked workers)."""
    engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA busy_timeout = 60000")
    cursor.close()


def session_factory(url: str) -> sessionmaker[Session]:
    """Sessions bound to the engine for ``url``; use as ``with factory() as s, s.begin():``."""
    return sessionmaker(get_engine(url), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """The Alembic configuration for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Create or migrate the database at ``url`` to the newest schema (idempotent)."""
    config = alembic_config(url)
    with get_engine(url).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
