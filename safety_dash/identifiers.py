"""Identifiers that become part of a file name: study ids (``<rules_dir>/<STUDYID>.yaml``) and archive names.

One rule for all of them, :data:`IDENTIFIER_PATTERN`: 1 to 64 letters, digits, '.', '_' or '-', starting with a
letter or digit. Such a value cannot name a parent folder (``..``), an absolute path, a hidden file or a second
line, so it stays inside the folder it is joined to.
"""

from __future__ import annotations

import re

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SHOWN = 80  # characters of a refused value quoted in the message


class IdentifierError(ValueError):
    """A value refused as an identifier; ``value`` is what was given, ``what`` what it was meant to be."""

    def __init__(self, value: object, what: str):
        self.value = value
        self.what = what
        shown = repr(value if not isinstance(value, str) or len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")
        super().__init__(
            f"{what} {shown} is not allowed: use letters, digits, '.', '_', '-' (at most 64), "
            "starting with a letter or digit"
        )


def check_identifier(value: object, what: str = "study id") -> str:
    """``value`` unchanged if it matches :data:`IDENTIFIER_PATTERN` as a whole, else :class:`IdentifierError`
    naming the value and ``what`` it is (e.g. ``study id '../outside' is not allowed: ...``).

    Nothing is stripped or changed: ``' QL1706'`` and ``'QL1706\\n'`` are refused, not repaired.
    """
    if not isinstance(value, str) or IDENTIFIER_PATTERN.fullmatch(value) is None:
        raise IdentifierError(value, what)
    return value
