"""Database problems as one sentence: a server that is down, a URL that cannot be parsed, a SQLite folder that
cannot be created.

The command line prints :func:`describe_database_error`'s sentence and exits 1; the web app answers 503 while
:func:`is_database_unavailable` holds. A URL is shown only through :func:`mask_url`, never with its password.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class DatabaseUnavailable(RuntimeError):
    """The database of ``url`` cannot be used at all (URL unparsable, folder not creatable); the message is one
    sentence that names the URL with its password masked."""

    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


# What the command line turns into one line (exit 1) instead of a traceback. Other database errors (a constraint
# violated, SQL that does not compile) are bugs and keep their traceback.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, OperationalError, InterfaceError, PoolTimeoutError)

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")
# Prefixes libpq (psycopg, psycopg2) puts before the reason itself.
_LIBPQ_PREFIX = re.compile(r"^(connection failed: |connection to server at [^,]*, port \d+ failed: |FATAL:\s+)")
_ATTEMPT = re.compile(r"^- host: .*?hostaddr: '[^']*': ")  # psycopg: "Multiple connection attempts failed" lines


def mask_url(url: str) -> str:
    """``url`` as it may be printed: the password, if any, replaced by ``***`` (also when the URL is unparsable)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: mask whatever sits between 'user:' and '@'
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached or used now (rather than a bug in a query)."""
    if isinstance(error, (DatabaseUnavailable, PoolTimeoutError)):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or error.statement is None or isinstance(error, InterfaceError)
    return False


def describe_database_error(error: BaseException, url: str) -> str:
    """One line for the operator: what failed at the database of ``url`` (password masked) and why, e.g.
    ``cannot reach the database at postgresql+psycopg://postgres@127.0.0.1:5999/test: connection refused``."""
    if isinstance(error, DatabaseUnavailable):
        return _one_line(str(error))
    where = mask_url(url)
    if isinstance(error, PoolTimeoutError):
        return f"the database at {where} gave no connection in time (every pooled connection is busy)"
    reason = _reason(error)
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return f"lost the connection to the database at {where}: {reason}"
    if isinstance(error, DBAPIError) and error.statement is None:  # failed while connecting
        verb = "open" if where.startswith("sqlite") else "reach"
        return f"cannot {verb} the database at {where}: {reason}"
    return f"the database at {where} failed: {reason}"


def _reason(error: BaseException) -> str:
    """The driver's reason without libpq's prefixes and hints, first letter lower-case."""
    text = str(getattr(error, "orig", None) or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    attempts = [_ATTEMPT.sub("", line) for line in lines if _ATTEMPT.match(line)]
    line = attempts[0] if attempts else (lines[0] if lines else type(error).__name__)
    previous = None
    while previous != line:
        previous, line = line, _LIBPQ_PREFIX.sub("", line)
    if line[:1].isupper() and line[1:2].islower():  # "Connection refused", not "SSL ..."
        line = line[0].lower() + line[1:]
    return line.rstrip(".")


def _one_line(text: str) -> str:
    return " ".join(text.split())
