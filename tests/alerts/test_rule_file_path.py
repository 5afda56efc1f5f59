"""A study's rules file is always inside SAFETY_DASH_RULES_DIR (issue 9, item 4).

The fault: an extract with STUDYID ``../outside`` made the product load ``<rules_dir>/../outside.yaml`` and fire
alerts from it. The study id is refused as an identifier, and the resolved path is checked as well.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from safety_dash.alerts.evaluate import evaluate_alerts_for_cut
from safety_dash.alerts.models import Alert, AlertEvaluation
from safety_dash.alerts.rules import RuleFileError, rule_file_path
from safety_dash.db.engine import get_engine
from safety_dash.identifiers import IdentifierError
from tests.alerts.helpers import ensure_cut

OUTSIDE_RULES = """
rules:
  - id: any-event
    kind: event
    name: Any adverse event
"""


@pytest.fixture
def rules_dir(tmp_path):
    """``tmp_path/rules``, with a valid rules file beside it (``tmp_path/outside.yaml``) that must never be read."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "outside.yaml").write_text(OUTSIDE_RULES, encoding="utf-8")
    return tmp_path / "rules"


def test_rule_file_path_of_a_study_is_its_file_in_the_rules_folder(rules_dir):
    assert rule_file_path(rules_dir, "QL1706-DEMO") == rules_dir / "QL1706-DEMO.yaml"


@pytest.mark.parametrize("study_id", ["../outside", "..", "/tmp/outside", "sub/../../outside", ".outside", "T1\n"])
def test_rule_file_path_refuses_a_study_id_that_names_another_folder(rules_dir, study_id):
    with pytest.raises(IdentifierError, match="^study id .* is not allowed: use letters, digits"):
        rule_file_path(rules_dir, study_id)


def test_rule_file_path_refuses_a_link_that_leads_out_of_the_rules_folder(rules_dir):
    (rules_dir / "T1.yaml").symlink_to(rules_dir.parent / "outside.yaml")
    with pytest.raises(RuleFileError, match=r"T1\.yaml: resolves to .*outside\.yaml, outside the rules folder"):
        rule_file_path(rules_dir, "T1")


def test_rule_file_path_follows_a_rules_folder_that_is_itself_a_link(rules_dir, tmp_path):
    (tmp_path / "linked").symlink_to(rules_dir, target_is_directory=True)
    (rules_dir / "T1.yaml").write_text(OUTSIDE_RULES, encoding="utf-8")
    assert rule_file_path(tmp_path / "linked", "T1") == tmp_path / "linked" / "T1.yaml"


def test_evaluate_refuses_a_cut_whose_study_id_leaves_the_rules_folder(database_url, rules_dir):
    # a cut stored under the id '../outside' (as ingestion let through before); its rules must not be looked up
    with get_engine(database_url).begin() as connection:
        run_id = ensure_cut(connection, "../outside")
    with get_engine(database_url).begin() as connection, pytest.raises(IdentifierError, match="'../outside'"):
        evaluate_alerts_for_cut(connection, run_id, rules_dir, {})
    with get_engine(database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(Alert)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(AlertEvaluation)).scalar_one() == 0
