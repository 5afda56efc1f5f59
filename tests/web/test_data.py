"""The pages' read API on the demo study: cuts, the numbers each view shows, paging and export."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.db.engine import get_engine
from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.web import data, listing, views
from safety_dash.web.state import ViewState


@pytest.fixture
def context(demo_db) -> data.WebContext:
    return data.WebContext(get_engine(demo_db.url), data.load_baskets_file(DEFAULT_BASKETS_FILE))


def _key(context, state=ViewState()):
    state, cut = data.resolve_state(context.engine, state)
    return state, views.cut_key(context, cut)


# --- cuts --------------------------------------------------------------------------------------------------------


def test_resolve_state_fills_in_the_newest_cut(context, demo_db):
    state, cut = data.resolve_state(context.engine, ViewState())
    assert state.study == demo_db.study_id
    assert state.cut == cut.run_id == demo_db.run_ids[-1]
    assert str(cut.cutoff) == "2023-03-31"


def test_resolve_state_keeps_an_earlier_cut(context, demo_db):
    state, cut = data.resolve_state(context.engine, ViewState(cut=demo_db.run_ids[0]))
    assert cut.run_id == demo_db.run_ids[0] and str(cut.cutoff) == "2022-03-31"


@pytest.mark.parametrize(
    ("state", "message"),
    [(ViewState(cut=999), "does not exist"), (ViewState(study="OTHER"), "has no data cut")],
)
def test_resolve_state_fails_with_a_sentence(context, demo_db, state, message):
    with pytest.raises(ValueError, match=message):
        data.resolve_state(context.engine, state)


def test_resolve_state_refuses_a_cut_of_another_study(context, demo_db):
    with pytest.raises(ValueError, match="belongs to study"):
        data.resolve_state(context.engine, ViewState(study="OTHER", cut=demo_db.run_ids[0]))


def test_resolve_state_on_an_empty_database_says_there_is_no_data(tmp_path):
    from safety_dash.db.engine import upgrade_database

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade_database(url)
    with pytest.raises(data.NoDataYet, match="No data cut yet"):
        data.resolve_state(get_engine(url), ViewState())


def test_load_cut_frames_for_views_uses_metric_names(context, demo_db):
    subjects, events = data.load_cut_frames_for_views(context.engine, demo_db.run_ids[-1])
    assert {"USUBJID", "TRTSDT", "SAFFL", "DAYS_AT_RISK", data.GROUP_COLUMN} <= set(subjects.columns)
    assert {"AE_ID", "USUBJID", "PT", "SOC", "ASTDY", "TRTEMFL", "AFTER_CUTOFF", "GRADE", "SERIOUS"} <= set(events)
    assert subjects["TRTSDT"].dtype == "datetime64[ns]"
    assert (events["SUBJECT_POS"] >= 0).all()


def test_the_views_read_a_cut_from_its_read_model(context, demo_db):
    # ingestion wrote each cut's read model; the pages open it instead of reading the database
    _, key = _key(context, ViewState(cut=demo_db.run_ids[0]))
    assert key.frames.source == "file"
    assert not key.frames.events["AE_ID"].to_numpy().flags.writeable  # read in place from the memory-mapped file


def test_the_same_numbers_whether_the_cut_is_read_from_its_file_or_the_database(context, demo_db, monkeypatch):
    from safety_dash import readmodel

    _, key = _key(context)
    from_file = views.load_overview(key, None, 3, False, False, None)
    listed = listing.listing_page(
        key, ViewState(), {"startRow": 0, "endRow": 30, "sortModel": [{"colId": "AETERM", "sort": "desc"}]}
    )
    monkeypatch.setenv("SAFETY_DASH_DATA_DIR", str(demo_db.folder / "no-read-model-here"))
    data.clear_caches()
    listing.clear_listing_caches()
    try:
        assert key.frames.source == "database"
        from_database = views.load_overview(key, None, 3, False, False, None)
        assert from_database.counts == from_file.counts and from_database.changes == from_file.changes
        pd.testing.assert_frame_equal(from_database.by_cohort, from_file.by_cohort)
        pd.testing.assert_frame_equal(from_database.new_events, from_file.new_events)
        assert listing.listing_page(key, ViewState(), {"startRow": 0, "endRow": 30, "sortModel": [
            {"colId": "AETERM", "sort": "desc"}]}) == listed  # fmt: skip
    finally:
        monkeypatch.undo()
        readmodel.clear_frames()
        data.clear_caches()
        listing.clear_listing_caches()


# --- overview and explorer -------------------------------------------------------------------------------------


def test_overview_counts_agree_with_the_rate_table(context):
    state, key = _key(context)
    overview = views.load_overview(key, None, None, False, False, None)
    frames = key.frames
    assert overview.n_dosed == int(frames.subjects["SAFFL"].sum())
    assert overview.n_enrolled == len(frames.subjects)
    # any TEAE: the union of every SOC's subjects; the SOC rate table's ALL rows bound it from below
    soc_table = views.load_rate_table(key, "soc", None, False, False)
    all_rows = soc_table.loc[soc_table["group"] == ALL_GROUP]
    assert overview.counts["teae"] >= all_rows["n_with_event"].max()
    grade3 = views.load_rate_table(key, "soc", 3, False, False)
    assert overview.counts["grade3"] >= grade3.loc[grade3["group"] == ALL_GROUP, "n_with_event"].max()
    assert overview.counts["fatal"] <= overview.counts["grade3"] <= overview.counts["teae"] <= overview.n_dosed
    # per cohort rows add up to the whole
    assert overview.by_cohort["n_dosed"].sum() == overview.n_dosed
    assert overview.by_cohort["teae"].sum() == overview.counts["teae"]


def test_overview_of_one_cohort_counts_only_that_cohort(context):
    _, key = _key(context)
    whole = views.load_overview(key, None, None, False, False, None)
    cohort = whole.by_cohort.sort_values("n_dosed").iloc[-1]
    one = views.load_overview(key, cohort["cohort"], None, False, False, None)
    assert one.n_dosed == cohort["n_dosed"]
    assert one.counts["teae"] == cohort["teae"]


def test_soc_grades_split_each_soc_by_worst_grade(context):
    _, key = _key(context)
    socs = views.load_soc_grades(key, None, None, False, False)
    grades = socs[list(views.GRADE_BUCKETS)].sum(axis=1)
    assert (grades == socs["n_with_event"]).all()
    # the same count as the rate table of the metrics layer
    table = views.load_rate_table(key, "soc", None, False, False)
    expected = table.loc[table["group"] == ALL_GROUP].set_index("soc")["n_with_event"]
    assert socs.set_index("term")["n_with_event"].to_dict() == expected[expected > 0].to_dict()


def test_pt_grades_of_a_soc_hold_only_its_pts(context):
    _, key = _key(context)
    socs = views.load_soc_grades(key, None, None, False, False)
    soc = socs.iloc[0]["term"]
    pts = views.load_pt_grades(key, None, None, False, False, soc)
    assert len(pts) > 0 and set(pts["soc"]) == {soc}


def test_rate_rows_narrow_to_the_soc_and_cohort(context):
    state, key = _key(context)
    every = views.load_rate_rows(key, state)
    soc = every.iloc[0]["soc"]
    narrowed = views.load_rate_rows(key, state.replace(soc=soc))
    assert set(narrowed["soc"]) == {soc} and len(narrowed) < len(every)
    cohort = key.frames.cohorts[0]
    one = views.load_rate_rows(key, state.replace(soc=soc, cohort=cohort))
    assert set(one["group"]) == {cohort}
    assert set(every["group"]) >= {"All cohorts", cohort}
    assert every["incidence_ci"].str.match(r"^\d+\.\d–\d+\.\d$").all()


# --- one term ----------------------------------------------------------------------------------------------------


def test_term_of_defaults_to_the_immune_related_union(context):
    state, key = _key(context)
    assert views.term_of(context, key.frames, state) == ("basket", data.ANY_IMMUNE_BASKET)
    assert views.term_of(context, key.frames, state.replace(pt="Rash")) == ("pt", "Rash")
    with pytest.raises(ValueError, match="not configured"):
        views.term_of(context, key.frames, state.replace(basket="nonsense"))


def test_term_rates_equal_the_pt_rows_of_the_full_table(context):
    _, key = _key(context)
    term = views.load_term_rates(key, "pt", "Rash", None, False, False).set_index("group")
    full = views.load_rate_table(key, "pt", None, False, False)
    rash = full.loc[full["pt"] == "Rash"].set_index("group")
    pd.testing.assert_series_equal(term["eair_per_100py"], rash["eair_per_100py"], check_names=False)
    assert (term["n_subjects"] == rash["n_subjects"]).all()


def test_rate_difference_compares_every_cohort_with_the_reference(context):
    _, key = _key(context)
    rates = views.load_term_rates(key, "basket", "skin", None, False, False)
    reference = rates.loc[rates["group"] != ALL_GROUP, "group"].iloc[0]
    difference = views.load_rate_difference(rates, reference)
    assert set(difference["group"]) == set(rates["group"]) - {ALL_GROUP, reference}
    assert (difference["mn_ci_low"] <= difference["eair_difference_per_100py"]).all()


def test_rate_trend_has_one_point_per_cut_and_cohort(context, demo_db):
    cuts = [data.load_cut(context.engine, run_id) for run_id in demo_db.run_ids]
    trend = views.load_rate_trend(context, cuts, "basket", "skin", ViewState())
    assert sorted(trend["run_id"].unique()) == list(demo_db.run_ids)
    assert (trend.loc[trend["group"] == ALL_GROUP].groupby("run_id").size() == 1).all()


def test_onset_curves_summary_and_points_agree(context):
    _, key = _key(context)
    onset = views.load_onset(key, "basket", data.ANY_IMMUNE_BASKET, None, False, False)
    overall = onset.summary.set_index("group").loc[ALL_GROUP]
    assert overall["n_with_event"] == onset.n_points_total == len(onset.points)
    curve = onset.curves.loc[onset.curves["group"] == ALL_GROUP, "cumulative_incidence"]
    assert curve.is_monotonic_increasing and 0 < curve.iloc[-1] <= 1


# --- listing ----------------------------------------------------------------------------------------------------


def test_listing_page_ships_at_most_one_page(context):
    state, key = _key(context)
    page = listing.listing_page(key, state, {"startRow": 0, "endRow": 100000})
    assert len(page["rowData"]) == listing.MAX_PAGE_ROWS
    assert page["rowCount"] == len(key.frames.events)


def test_listing_filters_follow_the_view_state(context):
    state, key = _key(context)
    events = key.frames.events
    serious = listing.listing_count(key, state.replace(serious=True))
    assert serious == int(events["SERIOUS"].sum())
    window = listing.listing_count(key, state.replace(window=True))
    assert window == int(events["TRTEMFL"].sum())
    grade3 = listing.listing_page(key, state.replace(min_grade=3), {"startRow": 0, "endRow": 50})
    assert all(row["GRADE"] >= 3 for row in grade3["rowData"])


def test_listing_grid_filter_and_sort(context):
    state, key = _key(context)
    request = {
        "startRow": 0,
        "endRow": 50,
        "filterModel": {"PT": {"filterType": "text", "type": "contains", "filter": "rash"}},
        "sortModel": [{"colId": "GRADE", "sort": "desc"}],
    }
    page = listing.listing_page(key, state, request)
    assert page["rowCount"] == int(key.frames.events["PT"].str.contains("rash", case=False).sum())
    grades = [row["GRADE"] for row in page["rowData"] if row["GRADE"] is not None]
    assert grades == sorted(grades, reverse=True)


def test_listing_flags_name_what_is_special(context):
    state, key = _key(context)
    events = key.frames.events
    imputed = np.flatnonzero(events["ASTDTF"].to_numpy() == "M")
    severity = np.flatnonzero(events["GRADE_SOURCE"].to_numpy() == "severity")
    rows = listing.listing_rows(events, np.concatenate([imputed[:1], severity[:1]]))
    assert "month and day imputed" in rows.iloc[0]["FLAGS"]
    if len(severity):
        assert "grade from severity" in rows.iloc[-1]["FLAGS"]


def test_listing_csv_holds_every_filtered_record(context):
    state, key = _key(context)
    text_csv = listing.listing_csv(key, state.replace(serious=True))
    frame = pd.read_csv(io.StringIO(text_csv))
    assert len(frame) == int(key.frames.events["SERIOUS"].sum())
    assert {"Subject", "Preferred term", "Flags", "In this cut"} <= set(frame.columns)


def test_page_frame_filters_numbers(context):
    frame = pd.DataFrame({"x": [1, 5, 9, 12], "name": ["a", "b", "c", "d"]})
    request = {
        "startRow": 0,
        "endRow": 10,
        "filterModel": {"x": {"filterType": "number", "type": "greaterThan", "filter": 4}},
    }
    page = listing.page_frame(frame, request)
    assert page["rowCount"] == 3 and [r["name"] for r in page["rowData"]] == ["b", "c", "d"]


# --- alerts, runs, subjects -------------------------------------------------------------------------------------


def test_open_alert_count_without_alert_tables(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'no_alerts.db'}")
    assert data.load_open_alert_count(engine, "S") == (0, "alerts not configured")


def test_open_alert_count_counts_unresolved_alerts(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alerts (id INTEGER PRIMARY KEY, study_id TEXT, status TEXT)"))
        connection.execute(
            text("INSERT INTO alerts (study_id, status) VALUES ('S','open'),('S','open'),('S','acknowledged'),"
                 "('S','resolved'),('T','open')")
        )  # fmt: skip
    assert data.load_open_alert_count(engine, "S") == (2, "1 acknowledged, not yet resolved")


def test_runs_and_quarantine(context, demo_db):
    runs = data.load_runs(context.engine, demo_db.study_id)
    assert list(runs["run_id"]) == sorted(demo_db.run_ids, reverse=True)
    with_rows = runs.loc[runs["n_quarantined"] > 0, "run_id"]
    assert not with_rows.empty  # the demo plants two bad rows in cut 2
    rows, total = data.load_quarantine_page(context.engine, int(with_rows.iloc[0]), 0, 1)
    assert total == 2 and len(rows) == 1 and rows.iloc[0]["reason"]


def test_subject_record_and_exposure(context):
    state, key = _key(context)
    usubjid = key.frames.events["USUBJID"].iloc[0]
    cut = data.load_cut(context.engine, state.cut)
    record = data.load_subject_record(context.engine, cut, usubjid)
    assert record["usubjid"] == usubjid and record["cohort"]
    exposure = data.load_subject_exposure(context.engine, cut, usubjid)
    assert len(exposure) >= record["n_doses"] >= 1
    assert data.load_subject_record(context.engine, cut, "NOBODY") is None
    assert views.find_subjects(key, usubjid[-4:])[0].endswith(usubjid[-4:])


def test_onset_curve_of_one_population_equals_the_all_curve(context):
    _, key = _key(context)
    full = views.load_onset(key, "basket", "skin", None, False, False).curves
    every = full.loc[full["group"] == ALL_GROUP].reset_index(drop=True)
    one = views.load_onset_curve(key, "basket", "skin", None, False, False, None)
    pd.testing.assert_frame_equal(one, every)
    cohort = key.frames.cohorts[-1]
    part = full.loc[full["group"] == cohort].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        views.load_onset_curve(key, "basket", "skin", None, False, False, cohort), part, check_exact=False
    )
