"""The demo study's three cuts loaded in turn send exactly the expected emails under the default demo rules."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from safety_dash.alerts.outbox import deliver_outbox
from safety_dash.alerts.review import acknowledge_alert, list_alerts
from safety_dash.db.engine import get_engine
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.jobs import evaluate_alerts, send_outbox

DEMO_RULES = Path(__file__).resolve().parents[2] / "safety_dash" / "alerts" / "demo_rules.yaml"
PREFIX = "[safety-dash] QL1706-DEMO: "
TEN = "Ph I 10 mg/kg"


def test_the_demo_cuts_send_exactly_the_expected_emails(alert_settings, tmp_path, mail_server):
    summary = write_demo_study(tmp_path / "demo")
    shutil.copy(DEMO_RULES, alert_settings.rules_dir / "QL1706-DEMO.yaml")
    fatal = {item["first_cut"]: item for item in summary["planted"]["fatal"]}
    subjects_by_cut = {}
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(alert_settings.database_url, tmp_path / "demo" / cut)
        assert result.status == "succeeded", result.message
        evaluate_alerts(alert_settings, result.run_id)
        before = len(mail_server.messages)
        report = send_outbox(alert_settings)
        assert report.failed == []
        subjects_by_cut[cut] = sorted(m["Subject"].removeprefix(PREFIX) for m in mail_server.messages[before:])

    grade5 = "Grade 5 (fatal) adverse event: {aedecod} (grade 5) in {usubjid}"
    assert subjects_by_cut["cut1"] == sorted([
        grade5.format(**fatal["cut1"]),
        "Grade >= 3 immune-related events in 2 of the first 6 subjects of a dose level (DLT window 21 days): " + TEN,
        "Grade >= 3 immune-related incidence above 25%: " + TEN,
        "Grade >= 3 pneumonitis: Pneumonitis (grade 3) in QL1706-DEMO-06-0019",
        "Grade >= 3 pneumonitis: Pneumonitis (grade 3) in QL1706-DEMO-10-0093",
        f"Grade >= 3 pneumonitis: Pneumonitis (grade 5) in {fatal['cut1']['usubjid']}",
        "Toxicity stopping boundary, grade >= 3 immune-related events: " + TEN,
    ])  # fmt: skip
    signal = "Flagged safety signal: "
    assert subjects_by_cut["cut2"] == sorted([
        signal + "Hypothyroidism out of line in Ph Ib NPC",  # the demo's planted out-of-line cohort
        grade5.format(**fatal["cut2"]),
        "Grade >= 3 pneumonitis: Pneumonitis (grade 3) in QL1706-DEMO-07-0157",
        f"Grade >= 3 pneumonitis: Pneumonitis (grade 3) in {fatal['cut3']['usubjid']}",  # grade 3 before it is fatal
        "Grade >= 3 pneumonitis: Pneumonitis (grade 3) in QL1706-DEMO-12-0196",
        "Grade >= 3 pneumonitis: Pneumonitis (grade 4) in QL1706-DEMO-08-0215",
    ])  # fmt: skip
    assert subjects_by_cut["cut3"] == sorted(
        [
            grade5.format(**fatal["cut3"]),
            # the demo's planted rising hepatitis in the NSCLC cohort; Hypothyroidism in NPC is still open: no new email
            signal + "Hepatitis rising in all subjects",
            signal + "Hepatitis rising in Ph Ib NSCLC",
            signal + "Hepatitis out of line in Ph Ib NSCLC",
            # the demo's planted potential Hy's law case (ALT and bilirubin at its hepatitis's onset, cut 3)
            f"Potential Hy's law case: {summary['planted']['hys_law'][0]}",
        ]
    )
    assert all(m["To"] == "monitor@example.org" for m in mail_server.messages)

    engine = get_engine(alert_settings.database_url)
    with engine.connect() as connection:
        alerts = list_alerts(connection, "QL1706-DEMO")
    count = alerts.loc[alerts["rule_id"] == "dlt-like-first-six"].iloc[0]
    assert count["evidence"]["subjects"] == sorted(summary["planted"]["dlt"])
    boundary = alerts.loc[alerts["rule_id"] == "irae-g3-stopping-boundary"].iloc[0]
    assert boundary["evidence"]["numbers"]["n_with_event"] == 8 and boundary["evidence"]["numbers"]["n_subjects"] == 25
    assert boundary["evidence"]["numbers"]["posterior_probability_above_p0"] > 0.9

    # the serious immune-related events go out the next morning, as one digest
    digest = send_outbox(alert_settings)  # not yet due
    assert digest.sent == []
    morning = dt.datetime.now(dt.UTC).replace(hour=7, minute=5) + dt.timedelta(days=1)
    report = deliver_outbox(engine, alert_settings, now=morning)
    n_digest = int((alerts["delivery"] == "digest").sum())
    assert len(report.sent) == 1 and n_digest == 32 + 18  # serious irAEs; ALT grade >= 3 (18 subjects, as `labs`)
    assert mail_server.messages[-1]["Subject"].startswith(f"{PREFIX}daily digest, {n_digest} alerts")

    # loading nothing new and checking again sends nothing
    for run_id in sorted(alerts["run_id"].unique()):
        evaluate_alerts(alert_settings, int(run_id))
    total = len(mail_server.messages)
    assert deliver_outbox(engine, alert_settings, now=morning + dt.timedelta(days=1)).sent == []
    assert len(mail_server.messages) == total == 19  # 7 + 6 + 5 immediate emails and the digest

    # the Alerts page: a monitor acknowledges; the alert leaves the open list with who and when
    grade5_alert = alerts.loc[alerts["rule_id"] == "grade5"].iloc[0]
    with engine.begin() as connection:
        acknowledge_alert(connection, int(grade5_alert["alert_id"]), "mona", "monitor", "SAE report received.")
    with engine.connect() as connection:
        open_alerts = list_alerts(connection, "QL1706-DEMO", "open")
        acknowledged = list_alerts(connection, "QL1706-DEMO", "acknowledged")
    assert len(open_alerts) == len(alerts) - 1 == 48 + 18 + 1
    assert acknowledged["acknowledged_by"].tolist() == ["mona"]
