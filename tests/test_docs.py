"""The README documents every setting and every command a user can type."""

from __future__ import annotations

from pathlib import Path

from safety_dash.cli import build_parser
from safety_dash.config import SETTINGS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_in_the_readme_table():
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in README]
    assert missing == []


def test_every_command_is_documented_in_the_readme():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    missing = [name for name in commands if f"`{name}" not in README]
    assert missing == []


def test_the_two_commands_are_make_run_and_make_test():
    assert "make run" in README and "make test" in README
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "\nrun:" in makefile and "\ntest:" in makefile


def test_the_definitions_in_the_repository_are_those_of_the_specification():
    """docs/definitions.md is the specification (DOMAIN.md) that every number follows, kept in the repository."""
    from pathlib import Path

    from tests.conftest import require_shared

    root = Path(__file__).resolve().parents[1]
    specification = require_shared(root.parent / "shared" / "DOMAIN.md")
    kept = (root / "docs" / "definitions.md").read_text(encoding="utf-8")
    assert kept.split("-->\n", 1)[1] == specification.read_text(encoding="utf-8")
