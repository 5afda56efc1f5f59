"""A real SMTP server (aiosmtpd) on a free local port, and settings that point the alerts at it."""

from __future__ import annotations

import dataclasses
import email
import socket
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from safety_dash.config import Settings, load_settings


def find_free_port() -> int:
    """A TCP port nothing listens on right now (aiosmtpd's Controller cannot start on port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MailServer:
    """An SMTP server keeping every accepted message; ``refuse`` makes it refuse that many DATA commands first."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = 0
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "554 5.3.0 Transaction failed (refused on purpose by the test)"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def start(self) -> MailServer:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_port() -> int:
    return find_free_port()


@pytest.fixture
def mail_server(mail_port):
    """A running SMTP server; stopped after the test."""
    server = MailServer(mail_port).start()
    yield server
    server.stop()


@pytest.fixture
def stopped_mail_server(mail_port):
    """An SMTP server that is not running yet (call ``start()``); stopped after the test."""
    server = MailServer(mail_port)
    yield server
    server.stop()


@pytest.fixture
def alert_settings(database_url, tmp_path, mail_port) -> Settings:
    """Settings for the test database, a rules folder in tmp_path and the local SMTP server's port."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    return dataclasses.replace(
        load_settings(),
        database_url=database_url,
        rules_dir=rules_dir,
        smtp_host="127.0.0.1",
        smtp_port=mail_port,
        smtp_user="",
        smtp_password="",
        smtp_starttls=False,
        smtp_from="safety-dash@test.example",
        alert_recipients=("monitor@example.org",),
        base_url="http://dash.test",
    )
