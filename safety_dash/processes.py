"""Which process holds a claim: runs, inbox extracts and outbox rows record ``host`` and ``pid`` so that a claim
left by a process that died can be recognised and taken over."""

from __future__ import annotations

import os
import socket


def current_host() -> str:
    """This machine's host name, as written in claims."""
    return socket.gethostname()


def is_dead_here(host: str, pid: int) -> bool:
    """True when ``host`` is this machine and no process ``pid`` runs on it (a claim on another host is not ours
    to judge)."""
    if host != current_host():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False
