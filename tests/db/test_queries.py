"""Named queries: loaded by name, parameters bound, unknown names refused with a sentence."""

from __future__ import annotations

import re

import pytest

from safety_dash.db.queries import QUERIES_DIR, load_query_text, run_query


def test_run_query_binds_parameters_instead_of_formatting_them(database_url):
    from safety_dash.db.engine import get_engine

    hostile = "T1' OR '1'='1"
    rows = run_query(get_engine(database_url), "latest_cut", study_id=hostile)
    assert rows.empty


def test_load_query_text_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="query 'nope' does not exist"):
        load_query_text("nope")


@pytest.mark.parametrize("path", sorted(QUERIES_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_query_comments_hold_no_bind_parameters(path):
    # A ":name" inside a comment is still read as a bind parameter by SQLAlchemy's text().
    comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("--")]
    assert [c for c in comments if re.search(r"(?<!:):[A-Za-z_]", c)] == []
