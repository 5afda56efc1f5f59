"""The 500-subject demo study of the web tests, for the views' tests."""

from tests.web.conftest import signal_demo_db  # noqa: F401  (a fixture, found by name)
