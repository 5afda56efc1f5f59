"""Every setting of safety-dash, read from the environment in one place.

Each setting has a documented default; ``README.md`` carries the same table, and a test checks that every
setting below appears there. Secrets (passwords, the session key) come only from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and what it means."""

    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("SAFETY_DASH_DATA_DIR", "./data", "Folder for the embedded SQLite database and the default inbox."),
    Setting(
        "SAFETY_DASH_DATABASE_URL",
        None,
        "SQLAlchemy URL of the database; default: SQLite file safety_dash.db in SAFETY_DASH_DATA_DIR. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    ),
    Setting("SAFETY_DASH_INBOX", None, "Folder the scheduler watches for extracts; default: DATA_DIR/inbox."),
    Setting("SAFETY_DASH_ARCHIVE", None, "Where processed extracts are moved; default: DATA_DIR/archive."),
    Setting("SAFETY_DASH_REJECTED", None, "Where rejected extracts are moved; default: DATA_DIR/rejected."),
    Setting("SAFETY_DASH_INGEST_INTERVAL_MINUTES", "15", "Minutes between two looks at the inbox."),
    Setting(
        "SAFETY_DASH_INBOX_SETTLE_SECONDS",
        "60",
        "An extract folder is taken once untouched this long (or at once when it holds a file named READY).",
    ),
    Setting("SAFETY_DASH_BASKETS_FILE", None, "YAML file of AE baskets; default: the shipped immune-related baskets."),
    Setting("SAFETY_DASH_RULES_DIR", None, "Folder of alert rule files <STUDYID>.yaml; default: DATA_DIR/rules."),
    Setting("SAFETY_DASH_SMTP_HOST", "localhost", "SMTP server that delivers alert emails."),
    Setting("SAFETY_DASH_SMTP_PORT", "25", "Port of the SMTP server."),
    Setting("SAFETY_DASH_SMTP_USER", "", "SMTP user name; empty means no login."),
    Setting("SAFETY_DASH_SMTP_PASSWORD", "", "SMTP password (secret; environment only)."),
    Setting("SAFETY_DASH_SMTP_STARTTLS", "false", "Use STARTTLS before logging in (true/false)."),
    Setting("SAFETY_DASH_SMTP_FROM", "safety-dash@localhost", "Sender address of alert emails."),
    Setting("SAFETY_DASH_ALERT_RECIPIENTS", "", "Comma-separated default recipients of alerts."),
    Setting(
        "SAFETY_DASH_ALERT_ADMIN",
        "",
        "Address told when an alert email cannot be delivered to a recipient (besides the message's other "
        "recipients); empty: only those recipients, the log and the Alerts page.",
    ),
    Setting(
        "SAFETY_DASH_ALERT_MAX_ATTEMPTS",
        "5",
        "Temporary refusals (4xx) of one recipient after which its delivery is given up as failed and reported.",
    ),
    Setting(
        "SAFETY_DASH_BASE_URL",
        "http://127.0.0.1:8050",
        "Address readers open the dashboard at, used in email links (https://... behind a proxy); unset, `serve` "
        "uses the address it serves on. Set it for the scheduler and the web workers in production.",
    ),
    Setting("SAFETY_DASH_SECRET_KEY", None, "Key that signs session cookies (secret; required outside `make run`)."),
    Setting("SAFETY_DASH_SESSION_MINUTES", "480", "Minutes after which a signed-in session expires."),
    Setting(
        "SAFETY_DASH_SECURE_COOKIES",
        "auto",
        "Mark the session cookie Secure (sent over HTTPS only): true, false, or auto (true when "
        "SAFETY_DASH_BASE_URL starts with https://).",
    ),
    Setting(
        "SAFETY_DASH_DB_POOL_SIZE",
        "5",
        "Database connections each process keeps open (each gunicorn worker, the scheduler, a command).",
    ),
    Setting(
        "SAFETY_DASH_DB_MAX_OVERFLOW",
        "10",
        "Connections a process may open beyond the pool at busy times (closed again after use). Keep workers x "
        "(pool size + overflow) + the scheduler's below the database's max_connections (PostgreSQL: 100).",
    ),
    Setting(
        "SAFETY_DASH_DB_POOL_TIMEOUT",
        "30",
        "Seconds a request waits for a free connection before it gives up (the dashboard answers 503).",
    ),
    Setting(
        "SAFETY_DASH_TRUSTED_PROXIES",
        "0",
        "Reverse proxies in front of the dashboard whose X-Forwarded-For and X-Forwarded-Proto headers are "
        "believed (1 behind one nginx); the client's address is then the one the proxy saw. 0: no proxy.",
    ),
)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is not None and value.strip() == "":
        return None if name not in ("SAFETY_DASH_SMTP_USER", "SAFETY_DASH_SMTP_PASSWORD") else ""
    return value


def _default(name: str) -> str | None:
    for setting in SETTINGS:
        if setting.name == name:
            return setting.default
    raise KeyError(f"{name} is not a setting; add it to SETTINGS in safety_dash/config.py")


def _get(name: str) -> str | None:
    value = _env(name)
    return value if value is not None else _default(name)


def _as_bool(name: str) -> bool:
    value = (_get(name) or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _as_float(name: str) -> float:
    value = _get(name)
    try:
        return float(value or "")
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None


def _as_secure_cookies(base_url: str) -> bool:
    """SAFETY_DASH_SECURE_COOKIES: true / false, or auto (Secure when the dashboard's address is https://)."""
    value = (_get("SAFETY_DASH_SECURE_COOKIES") or "auto").strip().lower()
    if value == "auto":
        return base_url.startswith("https://")
    try:
        return _as_bool("SAFETY_DASH_SECURE_COOKIES")
    except ValueError:
        raise ValueError(f"SAFETY_DASH_SECURE_COOKIES must be true, false or auto, not {value!r}") from None


def _as_whole_number(name: str) -> int:
    value = _get(name)
    try:
        number = int(value or "")
    except ValueError:
        raise ValueError(f"{name} must be a whole number (0 or more), not {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be 0 or more, not {number}")
    return number


def _as_positive_float(name: str) -> float:
    number = _as_float(name)
    if not number > 0:
        raise ValueError(f"{name} must be a number of seconds above 0, not {_get(name)!r}")
    return number


def _as_count(name: str) -> int:
    value = _get(name)
    try:
        count = int(value or "")
    except ValueError:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be at least 1, not {count}")
    return count


@dataclass(frozen=True)
class Settings:
    """The settings in force, read from the environment by :func:`load_settings`."""

    data_dir: Path
    database_url: str
    inbox: Path
    archive: Path
    rejected: Path
    ingest_interval_minutes: float
    inbox_settle_seconds: float
    baskets_file: Path
    rules_dir: Path
    smtp_host: str
    smtp_port: int
    smtp_user: str
    smtp_password: str = field(repr=False)
    smtp_starttls: bool = False
    smtp_from: str = "safety-dash@localhost"
    alert_recipients: tuple[str, ...] = ()
    base_url: str = "http://127.0.0.1:8050"
    secret_key: str | None = field(default=None, repr=False)
    session_minutes: float = 480.0
    alert_admin: str = ""
    alert_max_attempts: int = 5
    secure_cookies: bool = False
    trusted_proxies: int = 0
    base_url_configured: bool = False  # SAFETY_DASH_BASE_URL set in the environment (else the default above)
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout: float = 30.0


@dataclass(frozen=True)
class PoolOptions:
    """How many database connections a process keeps (``size``), may add at busy times (``max_overflow``), and how
    long a request waits for one (``timeout``, seconds): SQLAlchemy's ``pool_size``, ``max_overflow``,
    ``pool_timeout``."""

    size: int = 5
    max_overflow: int = 10
    timeout: float = 30.0


DEFAULT_BASKETS_FILE = Path(__file__).parent / "baskets" / "immune_related.yaml"


def load_settings() -> Settings:
    """Read every setting from the environment, applying the documented defaults."""
    data_dir = Path(_get("SAFETY_DASH_DATA_DIR") or "./data").resolve()
    database_url = _get("SAFETY_DASH_DATABASE_URL") or f"sqlite:///{data_dir / 'safety_dash.db'}"
    recipients = tuple(r.strip() for r in (_get("SAFETY_DASH_ALERT_RECIPIENTS") or "").split(",") if r.strip())
    base_url = (_get("SAFETY_DASH_BASE_URL") or "http://127.0.0.1:8050").rstrip("/")
    pool = load_pool_options()
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        inbox=Path(_get("SAFETY_DASH_INBOX") or data_dir / "inbox").resolve(),
        archive=Path(_get("SAFETY_DASH_ARCHIVE") or data_dir / "archive").resolve(),
        rejected=Path(_get("SAFETY_DASH_REJECTED") or data_dir / "rejected").resolve(),
        ingest_interval_minutes=_as_float("SAFETY_DASH_INGEST_INTERVAL_MINUTES"),
        inbox_settle_seconds=_as_float("SAFETY_DASH_INBOX_SETTLE_SECONDS"),
        baskets_file=Path(_get("SAFETY_DASH_BASKETS_FILE") or DEFAULT_BASKETS_FILE),
        rules_dir=Path(_get("SAFETY_DASH_RULES_DIR") or data_dir / "rules").resolve(),
        smtp_host=_get("SAFETY_DASH_SMTP_HOST") or "localhost",
        smtp_port=int(_as_float("SAFETY_DASH_SMTP_PORT")),
        smtp_user=_get("SAFETY_DASH_SMTP_USER") or "",
        smtp_password=_get("SAFETY_DASH_SMTP_PASSWORD") or "",
        smtp_starttls=_as_bool("SAFETY_DASH_SMTP_STARTTLS"),
        smtp_from=_get("SAFETY_DASH_SMTP_FROM") or "safety-dash@localhost",
        alert_recipients=recipients,
        base_url=base_url,
        secret_key=_get("SAFETY_DASH_SECRET_KEY"),
        session_minutes=_as_float("SAFETY_DASH_SESSION_MINUTES"),
        alert_admin=(_get("SAFETY_DASH_ALERT_ADMIN") or "").strip(),
        alert_max_attempts=_as_count("SAFETY_DASH_ALERT_MAX_ATTEMPTS"),
        secure_cookies=_as_secure_cookies(base_url),
        trusted_proxies=_as_whole_number("SAFETY_DASH_TRUSTED_PROXIES"),
        base_url_configured=_env("SAFETY_DASH_BASE_URL") is not None,
        db_pool_size=pool.size,
        db_max_overflow=pool.max_overflow,
        db_pool_timeout=pool.timeout,
    )


def load_pool_options() -> PoolOptions:
    """The database pool sizes from the environment (SAFETY_DASH_DB_POOL_SIZE, _MAX_OVERFLOW, _POOL_TIMEOUT)."""
    return PoolOptions(
        size=_as_count("SAFETY_DASH_DB_POOL_SIZE"),
        max_overflow=_as_whole_number("SAFETY_DASH_DB_MAX_OVERFLOW"),
        timeout=_as_positive_float("SAFETY_DASH_DB_POOL_TIMEOUT"),
    )


def follow_served_address(settings: Settings, host: str, port: int) -> Settings:
    """``settings`` with the dashboard's address set to where ``serve`` listens (``http://HOST:PORT``), unless
    SAFETY_DASH_BASE_URL was set: links in alert emails then point at the dashboard actually served (``make run
    PORT=8051``). A wildcard host (``0.0.0.0``, ``::``) is named by this machine's host name."""
    if settings.base_url_configured:
        return settings
    import socket

    name = socket.gethostname() if host in ("", "0.0.0.0", "::") else host
    name = f"[{name}]" if ":" in name else name  # an IPv6 address in a URL
    return replace(settings, base_url=f"http://{name}:{port}")
