"""The pages' read API on both databases: SQLite always, PostgreSQL when SAFETY_DASH_TEST_POSTGRES_URL is set."""

from __future__ import annotations

from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.db.engine import get_engine
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.web import data, listing, views
from safety_dash.web.auth import create_user, verify_password
from safety_dash.web.state import ViewState


def test_read_api_on_each_backend(database_url, tmp_path):
    write_demo_study(tmp_path / "demo", n_subjects=60, seed=7)
    runs = [ingest_extract(database_url, tmp_path / "demo" / cut) for cut in ("cut1", "cut2", "cut3")]
    assert [run.status for run in runs] == ["succeeded"] * 3
    engine = get_engine(database_url)
    context = data.WebContext(engine, data.load_baskets_file(DEFAULT_BASKETS_FILE))

    state, cut = data.resolve_state(engine, ViewState())
    assert cut.run_id == runs[-1].run_id and cut.counts["ae"]["read"] > 0
    assert data.load_studies(engine) == [cut.study_id]
    assert data.load_cohorts(engine, cut.run_id)
    assert data.previous_cut(engine, cut).run_id == runs[1].run_id

    key = views.cut_key(context, cut)
    overview = views.load_overview(key, None, None, False, False, None)
    assert 0 < overview.counts["teae"] <= overview.n_dosed <= overview.n_enrolled == 60
    page = listing.listing_page(key, state, {"startRow": 0, "endRow": 10})
    assert len(page["rowData"]) == 10 and page["rowCount"] == len(key.frames.events)
    usubjid = page["rowData"][0]["USUBJID"]
    assert data.load_subject_record(engine, cut, usubjid)["usubjid"] == usubjid
    assert len(data.load_subject_exposure(engine, cut, usubjid)) >= 1

    quarantined = data.load_runs(engine, cut.study_id).set_index("run_id")["n_quarantined"]
    assert quarantined[runs[1].run_id] == 2
    rows, total = data.load_quarantine_page(engine, runs[1].run_id, 0, 10)
    assert total == 2 and set(rows["domain"].str.lower()) == {"ae"}
    assert data.load_open_alert_count(engine, cut.study_id)[0] == 0

    create_user(engine, "pg-user", "a long password", "committee")
    assert verify_password(engine, "pg-user", "a long password").role == "committee"
