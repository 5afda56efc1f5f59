"""Rules evaluated on ingested cuts: the numbers are compute_rate_table's, each alert fires once, stays open until
acknowledged and fires again only after it was resolved and the condition came back; one email per alert."""

from __future__ import annotations

import datetime as dt

import pytest
from scipy import stats
from sqlalchemy import func, select

from safety_dash.alerts.models import Alert, OutboxMessage
from safety_dash.alerts.review import acknowledge_alert, list_alerts
from safety_dash.alerts.rules import RuleFileError
from safety_dash.analysis import GROUP_COLUMN, load_baskets, load_derived_frames
from safety_dash.db.engine import get_engine
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.jobs import evaluate_alerts, send_outbox
from safety_dash.metrics.rates import compute_rate_table
from tests.ingest.builders import ae_row, dm_row, ex_row, write_extract

CUTOFF = dt.date(2021, 6, 30)
FIRST_DOSES = {"T1-A1": "2021-01-04", "T1-A2": "2021-01-05", "T1-A3": "2021-01-06", "T1-A4": "2021-01-07",
               "T1-B1": "2021-01-04", "T1-B2": "2021-01-05"}  # fmt: skip
GI = "Gastrointestinal disorders"


def extract(colitis: dict[str, str], extra_ae: list[dict] = ()) -> dict[str, list[dict]]:
    """Cohort A (4 subjects) and B (2), two doses 3 weeks apart; grade 3 colitis at the given onset per subject."""
    dm, ex = [], []
    for usubjid, first in FIRST_DOSES.items():
        second = (dt.date.fromisoformat(first) + dt.timedelta(days=21)).isoformat()
        dm.append(dm_row(usubjid, first=first, last=second, cohort=usubjid[3]))
        ex += [ex_row(usubjid, 1, first), ex_row(usubjid, 2, second)]
    ae = [ae_row(usubjid, 1, "Colitis", onset, "3", AEBODSYS=GI) for usubjid, onset in colitis.items()]
    return {"dm": dm, "ex": ex, "ae": ae + list(extra_ae)}


def ingest(settings, tmp_path, name: str, domains: dict) -> int:
    """Ingest a cut and evaluate the alerts on it, as the pipeline does after a succeeded ingestion."""
    result = ingest_extract(settings.database_url, write_extract(tmp_path / name, domains), cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    evaluate_alerts(settings, result.run_id)
    return result.run_id


def write_rules(settings, text: str) -> None:
    (settings.rules_dir / "T1.yaml").write_text(text, encoding="utf-8")


def alerts_of(settings) -> list:
    with get_engine(settings.database_url).connect() as connection:
        return connection.execute(select(Alert.__table__).order_by(Alert.id)).fetchall()


COLITIS_INCIDENCE = """
rules:
  - id: colitis-g3
    kind: incidence
    name: Grade >= 3 colitis above 30%
    pt: Colitis
    min_grade: 3
    above_pct: 30
    min_n: 3
"""


# --- an ingestion that crosses a threshold -----------------------------------------------------------------------


def test_an_ingestion_crossing_a_threshold_delivers_exactly_one_message(alert_settings, tmp_path, mail_server):
    write_rules(alert_settings, COLITIS_INCIDENCE)
    ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20"}))  # 1 of 4 = 25%: below
    assert send_outbox(alert_settings).sent == [] and mail_server.messages == []

    run_id = ingest(alert_settings, tmp_path, "cut2", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    report = send_outbox(alert_settings)
    assert len(report.sent) == 1
    [message] = mail_server.messages
    assert message["To"] == "monitor@example.org"
    assert message["Subject"] == "[safety-dash] T1: Grade >= 3 colitis above 30%: A"
    text = message.get_body(("plain",)).get_content()
    assert "A, Colitis, grade >= 3: 2 of 4 subjects = 50.0% (95% CI 6.8-93.2%), above 30%" in text
    assert f"Data cut: {run_id} (cutoff 2021-06-30)" in text
    assert "Subjects: T1-A1, T1-A2" in text
    assert f"View: http://dash.test/rates?study=T1&cut={run_id}&cohort=A&grade=3&pt=Colitis" in text
    html = message.get_body(("html",)).get_content()
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f'src="cid:{image["Content-ID"][1:-1]}"' in html

    # the evidence holds compute_rate_table's numbers for the cut, not numbers recomputed another way
    with get_engine(alert_settings.database_url).connect() as connection:
        subjects, events = load_derived_frames(connection, run_id)
    table = compute_rate_table(events, subjects, "pt", GROUP_COLUMN, min_grade=3)
    expected = table.loc[(table["group"] == "A") & (table["pt"] == "Colitis")].iloc[0]
    [alert] = alerts_of(alert_settings)
    numbers = alert.evidence["numbers"]
    for name in ("n_subjects", "n_with_event", "incidence_pct", "incidence_ci_low", "eair_per_100py", "eair_ci_low"):
        assert numbers[name] == pytest.approx(float(expected[name]), rel=1e-12), name
    assert (numbers["n_subjects"], numbers["n_with_event"], numbers["incidence_pct"]) == (4, 2, 50.0)
    assert alert.evidence["subjects"] == ["T1-A1", "T1-A2"]
    assert (alert.run_id, alert.status, alert.alert_key) == (run_id, "open", "colitis-g3|A|Colitis")

    # running again (the check, then the sender) delivers nothing
    evaluate_alerts(alert_settings, run_id)
    assert send_outbox(alert_settings).sent == []
    assert len(mail_server.messages) == 1 and len(alerts_of(alert_settings)) == 1


def test_evaluate_alerts_twice_on_the_same_cut_creates_nothing_new(alert_settings, tmp_path):
    write_rules(alert_settings, COLITIS_INCIDENCE)
    run_id = ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    again = evaluate_alerts(alert_settings, run_id)
    assert again.fired == [] and len(again.still_active) == 1
    with get_engine(alert_settings.database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 1


# --- event rules, escaping, the life of an alert -----------------------------------------------------------------


GRADE5 = """
rules:
  - id: grade5
    kind: event
    name: Grade 5 adverse event
    min_grade: 5
"""


def fatal(term: str = "Pneumonitis", grade: str = "5", **values) -> dict:
    return ae_row("T1-B1", 2, term, "2021-03-01", grade, AEBODSYS="Respiratory, thoracic and mediastinal disorders",
                  AESER="Y", AEOUT="FATAL" if grade == "5" else "NOT RECOVERED/NOT RESOLVED", **values)  # fmt: skip


def test_an_ae_term_holding_html_arrives_escaped(alert_settings, tmp_path, mail_server):
    write_rules(alert_settings, GRADE5)
    script = "<script>alert(1)</script>"
    ingest(alert_settings, tmp_path, "cut1", extract({}, [fatal(script, AETERM=script)]))
    send_outbox(alert_settings)
    [message] = mail_server.messages
    html = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert message["Subject"] == f"[safety-dash] T1: Grade 5 adverse event: {script} (grade 5) in T1-B1"
    assert f"PT {script}" in message.get_body(("plain",)).get_content()  # plain text stays as written


def test_an_event_alert_fires_on_a_new_record_and_not_again_while_it_stays_open(alert_settings, tmp_path, mail_server):
    write_rules(alert_settings, GRADE5)
    ingest(alert_settings, tmp_path, "cut1", extract({}))
    ingest(alert_settings, tmp_path, "cut2", extract({}, [fatal()]))
    ingest(alert_settings, tmp_path, "cut3", extract({}, [fatal()]))  # unchanged
    ingest(alert_settings, tmp_path, "cut4", extract({}, [fatal(AEENDTC="2021-03-20")]))  # changed, still grade 5
    send_outbox(alert_settings)
    assert len(mail_server.messages) == 1
    [alert] = alerts_of(alert_settings)
    assert alert.alert_key == "grade5|T1-B1|2"
    assert alert.evidence["record"]["record_change"] == "new"


def test_a_record_new_in_a_cut_that_was_never_evaluated_still_fires_on_the_next(alert_settings, tmp_path):
    write_rules(alert_settings, GRADE5)
    ingest(alert_settings, tmp_path, "cut1", extract({}))
    skipped = ingest_extract(
        alert_settings.database_url, write_extract(tmp_path / "cut2", extract({}, [fatal()])), cutoff=CUTOFF
    )  # the process died before evaluating the alerts of cut 2
    cut3 = ingest(alert_settings, tmp_path, "cut3", extract({}, [fatal()]))  # the record is unchanged in cut 3
    [alert] = alerts_of(alert_settings)
    assert (alert.run_id, alert.evidence["record"]["record_change"]) == (cut3, "unchanged")
    assert skipped.run_id < cut3


def test_an_alert_fires_again_only_after_it_was_resolved_and_the_condition_came_back(
    alert_settings, tmp_path, mail_server
):
    write_rules(alert_settings, GRADE5)
    engine = get_engine(alert_settings.database_url)
    ingest(alert_settings, tmp_path, "cut1", extract({}, [fatal()]))
    [first] = alerts_of(alert_settings)

    # the condition goes away while nobody has acknowledged: the alert stays open
    cut2 = ingest(alert_settings, tmp_path, "cut2", extract({}, [fatal(grade="4")]))
    [first] = alerts_of(alert_settings)
    assert (first.status, first.condition_active, first.last_run_id) == ("open", False, cut2)
    ingest(alert_settings, tmp_path, "cut3", extract({}, [fatal()]))  # back while still open: nothing new
    assert len(alerts_of(alert_settings)) == 1

    with engine.begin() as connection:
        acknowledge_alert(connection, first.id, "mona", "monitor", "Narrative requested from the site.")
    cut4 = ingest(alert_settings, tmp_path, "cut4", extract({}, [fatal(grade="4")]))
    [first] = alerts_of(alert_settings)
    assert (first.status, first.resolved_run_id, first.open_key) == ("resolved", cut4, None)

    cut5 = ingest(alert_settings, tmp_path, "cut5", extract({}, [fatal()]))
    first, second = alerts_of(alert_settings)
    assert (second.alert_key, second.episode, second.run_id, second.status) == (first.alert_key, 2, cut5, "open")
    send_outbox(alert_settings)
    assert len(mail_server.messages) == 2
    assert mail_server.messages[0]["Message-ID"] != mail_server.messages[1]["Message-ID"]


# --- the other kinds ---------------------------------------------------------------------------------------------


def test_bayesian_rule_fires_with_the_beta_posterior_probability(alert_settings, tmp_path):
    write_rules(
        alert_settings,
        """
rules:
  - id: boundary
    kind: bayesian
    pt: Colitis
    min_grade: 3
    p0: 0.2
    prior: {a: 0.5, b: 1.5}
    above_probability: 0.6
    min_n: 3
""",
    )
    ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    [alert] = alerts_of(alert_settings)  # A: 2 of 4; B: 0 of 2 is below min_n
    numbers = alert.evidence["numbers"]
    assert (numbers["posterior_a"], numbers["posterior_b"]) == (2.5, 3.5)
    assert numbers["posterior_probability_above_p0"] == pytest.approx(stats.beta.sf(0.2, 2.5, 3.5), rel=1e-12)
    # 1 - I_0.2(2.5, 3.5), by numerical integration of the Beta(2.5, 3.5) density over (0.2, 1): 0.86718269
    assert numbers["posterior_probability_above_p0"] == pytest.approx(0.86718269, abs=1e-8)
    assert "P(true rate > 0.2) = 0.867, above 0.6" in alert.summary


def test_count_rule_counts_the_first_n_dosed_subjects_within_the_window(alert_settings, tmp_path):
    write_rules(
        alert_settings,
        """
rules:
  - id: dlt
    kind: count
    cohorts: [A]
    pt: Colitis
    min_grade: 3
    first_n: 3
    within_days: 21
    at_least: 2
""",
    )
    # A1 day 17 and A3 day 10 count; A2 (day 40) is outside the window; A4 is not among the first three dosed
    late = {"T1-A1": "2021-01-20", "T1-A2": "2021-02-13", "T1-A4": "2021-01-10"}
    ingest(alert_settings, tmp_path, "cut1", extract(late))
    assert alerts_of(alert_settings) == []
    ingest(alert_settings, tmp_path, "cut2", extract(late | {"T1-A3": "2021-01-15"}))
    [alert] = alerts_of(alert_settings)
    assert (alert.evidence["numbers"]["n_subjects"], alert.evidence["numbers"]["n_with_event"]) == (3, 2)
    assert alert.evidence["subjects"] == ["T1-A1", "T1-A3"]
    assert "2 of the first 3 dosed 3 subjects with onset by day 21, at least 2" in alert.summary


def test_eair_rule_can_require_the_lower_bound_above_the_rate(alert_settings, tmp_path):
    write_rules(
        alert_settings,
        """
rules:
  - {id: eair-point, kind: eair, cohorts: [A], pt: Colitis, min_grade: 3, above_rate: 100}
  - {id: eair-lower, kind: eair, cohorts: [A], pt: Colitis, min_grade: 3, above_rate: 100, lower_bound_above: true}
""",
    )
    run_id = ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    with get_engine(alert_settings.database_url).connect() as connection:
        subjects, events = load_derived_frames(connection, run_id)
    table = compute_rate_table(events, subjects, "pt", GROUP_COLUMN, min_grade=3).set_index("group")
    assert table.loc["A", "eair_per_100py"] > 100 > table.loc["A", "eair_ci_low"]
    [alert] = alerts_of(alert_settings)
    assert alert.rule_id == "eair-point"
    assert alert.evidence["numbers"]["eair_per_100py"] == pytest.approx(table.loc["A", "eair_per_100py"], rel=1e-12)


def test_a_basket_rule_pools_the_terms_of_the_basket(alert_settings, tmp_path):
    write_rules(
        alert_settings,
        """
rules:
  - {id: gi, kind: incidence, basket: gastrointestinal, min_grade: 3, above_pct: 40, cohorts: [A]}
""",
    )
    diarrhoea = ae_row("T1-A3", 2, "Diarrhoea", "2021-01-25", "3", AEBODSYS=GI)
    run_id = ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20"}, [diarrhoea]))
    with get_engine(alert_settings.database_url).connect() as connection:
        subjects, events = load_derived_frames(connection, run_id)
    baskets = load_baskets(alert_settings.baskets_file)
    gastrointestinal = {"gastrointestinal": baskets["gastrointestinal"]}
    table = compute_rate_table(events, subjects, "basket", GROUP_COLUMN, gastrointestinal, min_grade=3)
    table = table.set_index("group")
    [alert] = alerts_of(alert_settings)
    assert alert.evidence["numbers"]["n_with_event"] == table.loc["A", "n_with_event"] == 2
    assert alert.evidence["subjects"] == ["T1-A1", "T1-A3"]


# --- rule files missing or wrong ----------------------------------------------------------------------------------


def test_evaluate_alerts_without_a_rule_file_says_so(alert_settings, tmp_path):
    result = ingest_extract(alert_settings.database_url, write_extract(tmp_path / "cut1", extract({})), cutoff=CUTOFF)
    evaluation = evaluate_alerts(alert_settings, result.run_id)
    assert evaluation.fired == [] and evaluation.message.startswith("no rule file")


def test_evaluate_alerts_with_a_malformed_rule_file_fails_with_the_line(alert_settings, tmp_path):
    write_rules(alert_settings, "rules:\n  - id: a\n    kind: incidence\n    pt: Colitis\n    above_pct: lots\n")
    result = ingest_extract(alert_settings.database_url, write_extract(tmp_path / "cut1", extract({})), cutoff=CUTOFF)
    with pytest.raises(RuleFileError, match=r"T1.yaml, line 5: rule 'a': above_pct must be a number, not 'lots'"):
        evaluate_alerts(alert_settings, result.run_id)


def test_evaluate_alerts_refuses_a_run_that_failed(alert_settings, tmp_path):
    failed = ingest_extract(alert_settings.database_url, tmp_path / "no-such-folder", cutoff=CUTOFF)
    with pytest.raises(ValueError, match=f"run {failed.run_id} is failed, not a data cut"):
        evaluate_alerts(alert_settings, failed.run_id)


# --- the Alerts page's functions --------------------------------------------------------------------------------


def test_acknowledge_alert_records_who_when_and_why_and_refuses_committee_members(alert_settings, tmp_path):
    write_rules(alert_settings, COLITIS_INCIDENCE)
    ingest(alert_settings, tmp_path, "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    engine = get_engine(alert_settings.database_url)
    with engine.connect() as connection:
        [alert_id] = list_alerts(connection, "T1", "open")["alert_id"]
    with engine.begin() as connection:
        with pytest.raises(PermissionError, match="committee members can read alerts but not acknowledge them"):
            acknowledge_alert(connection, alert_id, "carl", "committee", "seen")
        with pytest.raises(ValueError, match="the comment is empty"):
            acknowledge_alert(connection, alert_id, "mona", "monitor", "  ")
        before = dt.datetime.now(dt.UTC)
        acknowledged = acknowledge_alert(connection, alert_id, "mona", "monitor", "Discussed with the SRC chair.")
        assert acknowledged["status"] == "acknowledged"
        with pytest.raises(ValueError, match="is acknowledged, not open: acknowledged by mona"):
            acknowledge_alert(connection, alert_id, "max", "monitor", "again")
    with engine.connect() as connection:
        frame = list_alerts(connection, "T1")
        assert list_alerts(connection, "T1", "open").empty
        assert len(list_alerts(connection, "T1", ["open", "acknowledged"])) == 1
    row = frame.iloc[0]
    assert (row["status"], row["acknowledged_by"], row["acknowledged_role"]) == ("acknowledged", "mona", "monitor")
    assert row["ack_comment"] == "Discussed with the SRC chair."
    assert row["acknowledged_at"].to_pydatetime() >= before
    assert row["evidence"]["numbers"]["n_with_event"] == 2 and row["scope"] == {"cohort": "A", "term": "Colitis"}
    assert row["view_path"].startswith("/rates?study=T1&cut=") and row["email_status"] == "pending"


def test_acknowledging_an_alert_whose_condition_is_gone_resolves_it(alert_settings, tmp_path):
    write_rules(alert_settings, GRADE5)
    ingest(alert_settings, tmp_path, "cut1", extract({}, [fatal()]))
    ingest(alert_settings, tmp_path, "cut2", extract({}, [fatal(grade="4")]))
    [alert] = alerts_of(alert_settings)
    with get_engine(alert_settings.database_url).begin() as connection:
        result = acknowledge_alert(connection, alert.id, "mona", "monitor", "Grade corrected by the site.")
    assert (result["status"], result["open_key"]) == ("resolved", None)
