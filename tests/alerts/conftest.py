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
    """An SMTP server keeping every accepted message, with scripted misbehaviour:

    - ``refuse``: refuse that many DATA commands first (554);
    - ``rcpt_replies``: {address: [reply, ...]}: the next RCPT replies for that address (the last one repeats;
      a 2xx reply accepts the address);
    - ``data_replies``: the next replies at the end of DATA (the last one repeats; a 2xx reply stores the message);
    - ``drop_after_storing``: store that many messages, then close the connection without replying.
    """

    def __init__(self, port: int):
        self.port = port
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_log: list[str] = []  # every RCPT address asked, in order
        self.data_attempts = 0
        self.refuse = 0
        self.rcpt_replies: dict[str, list[str]] = {}
        self.data_replies: list[str] = []
        self.drop_after_storing = 0
        self.controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_log.append(address)
        replies = self.rcpt_replies.get(address)
        reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else "250 OK"
        if not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_attempts += 1
        if self.refuse:
            self.refuse -= 1
            return "554 5.3.0 Transaction failed (refused on purpose by the test)"
        replies = self.data_replies
        reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else "250 OK"
        if not reply.startswith("2"):
            return reply
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.drop_after_storing:
            self.drop_after_storing -= 1
            server.transport.close()  # stored, and the client never hears so
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
