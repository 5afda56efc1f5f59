"""Each page's callbacks answered over HTTP as the browser calls them: right numbers, visible errors, one page."""

from __future__ import annotations

import json
import re

import pytest

from safety_dash.web import ids
from safety_dash.web.dashcall import call_callback
from safety_dash.web.state import ViewState, parse_state, state_to_search

MAX_RESPONSE_BYTES = 300_000


@pytest.fixture
def call(web_app, signed_in):
    """Call a callback of the signed-in app: call(output, inputs, state)."""

    def _call(output, inputs, state=None, changed=None):
        answer = call_callback(signed_in, web_app, output, inputs, state, changed)
        assert answer.status == 200, (output, answer)
        assert answer.n_bytes < MAX_RESPONSE_BYTES, (output, answer.n_bytes)
        return answer.outputs

    return _call


def _search(demo_db, **fields) -> str:
    return state_to_search(ViewState(study=demo_db.study_id, cut=demo_db.run_ids[-1], **fields))


def _text(component) -> str:
    """All text inside a serialised component tree."""
    return json.dumps(component)


def test_overview_callback_shows_the_cut_and_the_cards(call, demo_db):
    out = call(f"{ids.OVERVIEW_CARDS}.children", {"url.search": _search(demo_db)})
    cards = _text(out[ids.OVERVIEW_CARDS]["children"])
    for label in ("Subjects dosed", "Patient-years at risk", "Grade \\u2265 3", "Serious", "Fatal", "Immune-related",
                  "Open alerts"):  # fmt: skip
        assert label in cards
    assert f"cut {demo_db.run_ids[-2]}" in _text(out[ids.OVERVIEW_CHANGES]["children"])
    assert out[ids.OVERVIEW_ALERT]["children"] is None


def test_a_link_to_a_missing_cut_shows_an_alert_not_an_error(call, demo_db):
    out = call(f"{ids.OVERVIEW_CARDS}.children", {"url.search": "?cut=999"})
    assert "does not exist" in _text(out[ids.OVERVIEW_ALERT]["children"])
    assert ids.OVERVIEW_CARDS not in out  # left as it was


def test_filter_bar_fills_in_study_and_cut_without_writing_the_address(call, demo_db):
    out = call(f"{ids.FILTER_CUT}.value", {"url.search": ""})
    assert out[ids.FILTER_CUT]["value"] == demo_db.run_ids[-1]
    assert out[ids.FILTER_STUDY]["value"] == demo_db.study_id
    assert "url" not in out  # no history entry just for opening the app


def test_filter_bar_change_writes_a_pinned_address(call, demo_db):
    out = call(
        f"{ids.FILTER_CUT}.value",
        {"url.search": "", f"{ids.FILTER_GRADE}.value": 3, f"{ids.FILTER_CUT}.value": demo_db.run_ids[0],
         f"{ids.FILTER_STUDY}.value": demo_db.study_id, f"{ids.FILTER_FLAGS}.value": ["serious"]},
        changed=[f"{ids.FILTER_GRADE}.value"],
    )  # fmt: skip
    state = parse_state(out["url"]["search"])
    assert state == ViewState(study=demo_db.study_id, cut=demo_db.run_ids[0], min_grade=3, serious=True)


def test_explorer_soc_click_selects_the_soc(call, demo_db):
    click = {"points": [{"customdata": ["Skin and subcutaneous tissue disorders", 3, 10, 8.0]}]}
    out = call(
        "url.search",
        {f"{ids.EXPLORER_SOC_GRAPH}.clickData": click},
        {"url.search": _search(demo_db, pt="Rash")},
    )
    assert parse_state(out["url"]["search"]).soc == "Skin and subcutaneous tissue disorders"
    assert parse_state(out["url"]["search"]).pt is None


def test_explorer_grid_pages_and_narrows(call, demo_db):
    request = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}}
    every = call(f"{ids.EXPLORER_GRID}.getRowsResponse", {f"{ids.EXPLORER_GRID}.getRowsRequest": request},
                 {"url.search": _search(demo_db)})[ids.EXPLORER_GRID]["getRowsResponse"]  # fmt: skip
    soc = every["rowData"][0]["soc"]
    narrowed = call(f"{ids.EXPLORER_GRID}.getRowsResponse", {f"{ids.EXPLORER_GRID}.getRowsRequest": request},
                    {"url.search": _search(demo_db, soc=soc)})[ids.EXPLORER_GRID]["getRowsResponse"]  # fmt: skip
    assert len(every["rowData"]) == 50 and every["rowCount"] > narrowed["rowCount"]
    assert {row["soc"] for row in narrowed["rowData"]} == {soc}


def test_explorer_charts_and_term_panel(call, demo_db):
    out = call(f"{ids.EXPLORER_SOC_GRAPH}.figure", {"url.search": _search(demo_db, pt="Rash")})
    assert out[ids.EXPLORER_TERM_PANEL]["hidden"] is False
    assert len(out[ids.EXPLORER_SOC_GRAPH]["figure"]["data"]) == 7  # six grade buckets and the labels


def test_rates_callback_draws_every_cohort(call, demo_db, web_app):
    out = call(f"{ids.RATES_FOREST}.figure", {"url.search": _search(demo_db, basket="skin")})
    forest = out[ids.RATES_FOREST]["figure"]["data"][0]
    assert len(forest["y"]) >= 3 and any(label.startswith("ALL") for label in forest["y"])
    assert out[ids.RATES_TERM]["value"] == "basket:skin"
    assert out[ids.RATES_REFERENCE]["value"]


def test_onset_point_click_opens_the_subject(call, demo_db):
    click = {"points": [{"customdata": "QL1706-DEMO-01-0001"}]}
    out = call("url.href", {f"{ids.ONSET_DISTRIBUTION}.clickData": click}, {"url.search": _search(demo_db)})
    href = out["url"]["href"]
    assert href.startswith("/subject?") and parse_state(href.split("?", 1)[1]).subject == "QL1706-DEMO-01-0001"


def test_subject_callback_and_unknown_subject(call, demo_db):
    listing = call(f"{ids.LISTING_GRID}.getRowsResponse",
                   {f"{ids.LISTING_GRID}.getRowsRequest": {"startRow": 0, "endRow": 1}},
                   {"url.search": _search(demo_db)})[ids.LISTING_GRID]["getRowsResponse"]  # fmt: skip
    usubjid = listing["rowData"][0]["USUBJID"]
    out = call(f"{ids.SUBJECT_TIMELINE}.figure", {"url.search": _search(demo_db, subject=usubjid)})
    assert usubjid in _text(out[ids.SUBJECT_HEADER]["children"])
    assert out[ids.SUBJECT_EVENTS]["rowData"]
    missing = call(f"{ids.SUBJECT_TIMELINE}.figure", {"url.search": _search(demo_db, subject="NOBODY")})
    assert "is not in data cut" in _text(missing[ids.SUBJECT_ALERT]["children"])


def test_listing_ships_at_most_one_page_and_exports_csv(call, demo_db):
    page = call(f"{ids.LISTING_GRID}.getRowsResponse",
                {f"{ids.LISTING_GRID}.getRowsRequest": {"startRow": 0, "endRow": 5000}},
                {"url.search": _search(demo_db)})[ids.LISTING_GRID]["getRowsResponse"]  # fmt: skip
    assert len(page["rowData"]) == 100 < page["rowCount"]
    out = call(f"{ids.LISTING_DOWNLOAD}.data", {f"{ids.LISTING_EXPORT}.n_clicks": 1},
               {"url.search": _search(demo_db, serious=True)})  # fmt: skip
    download = out[ids.LISTING_DOWNLOAD]["data"]
    assert download["filename"].endswith("_ae_listing.csv")
    assert download["content"].startswith("Subject,Cohort")


def test_data_callbacks_show_runs_and_quarantine(call, demo_db):
    out = call(f"{ids.DATA_RUNS}.rowData", {"url.search": _search(demo_db)})
    runs = out[ids.DATA_RUNS]["rowData"]
    assert [r["run_id"] for r in runs] == sorted(demo_db.run_ids, reverse=True)
    selected = out[ids.DATA_SELECTED_RUN]["data"]
    page = call(f"{ids.DATA_QUARANTINE}.getRowsResponse",
                {f"{ids.DATA_QUARANTINE}.getRowsRequest": {"startRow": 0, "endRow": 25}},
                {f"{ids.DATA_SELECTED_RUN}.data": selected, "url.search": _search(demo_db)})  # fmt: skip
    rows = page[ids.DATA_QUARANTINE]["getRowsResponse"]["rowData"]
    assert len(rows) == 2 and all(row["reason"] for row in rows)


def test_term_listing_answers_while_no_term_is_selected(call, demo_db):
    # The hidden term listing still asks for rows; an unanswered request stalls AG Grid once two are in flight
    # (the listing then stays at "1 to ? of more" after a SOC click and a PT click).
    request = {"startRow": 0, "endRow": 20, "sortModel": [], "filterModel": {}}
    soc = "Skin and subcutaneous tissue disorders"
    out = call(f"{ids.EXPLORER_TERM_LISTING}.getRowsResponse",
               {f"{ids.EXPLORER_TERM_LISTING}.getRowsRequest": request},
               {"url.search": _search(demo_db, soc=soc)})  # fmt: skip
    assert out[ids.EXPLORER_TERM_LISTING]["getRowsResponse"] == {"rowData": [], "rowCount": 0}


def test_quarantine_grid_answers_before_a_run_is_selected(call, demo_db):
    request = {"startRow": 0, "endRow": 25}
    out = call(f"{ids.DATA_QUARANTINE}.getRowsResponse", {f"{ids.DATA_QUARANTINE}.getRowsRequest": request},
               {f"{ids.DATA_SELECTED_RUN}.data": None, "url.search": _search(demo_db)})  # fmt: skip
    assert out[ids.DATA_QUARANTINE]["getRowsResponse"] == {"rowData": [], "rowCount": 0}


def test_explorer_grid_lists_a_terms_cohorts_by_dose(call, demo_db):
    # The demo's cohorts in natural order: all cohorts first, then the dose levels by dose, then phase Ib by name.
    expected = ["All cohorts", "Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 3 mg/kg", "Ph I 5 mg/kg", "Ph I 10 mg/kg",
                "Ph Ib Cervical", "Ph Ib NPC", "Ph Ib NSCLC", "Ph Ib Other"]  # fmt: skip
    request = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}
    rows = call(
        f"{ids.EXPLORER_GRID}.getRowsResponse",
        {f"{ids.EXPLORER_GRID}.getRowsRequest": request},
        {"url.search": _search(demo_db, soc="Endocrine disorders")},
    )[ids.EXPLORER_GRID]["getRowsResponse"]
    first_pt = rows["rowData"][0]["pt"]
    assert [row["group"] for row in rows["rowData"] if row["pt"] == first_pt] == expected
    by_cohort = dict(
        request,
        sortModel=[{"colId": "group", "sort": "asc"}],
        filterModel={"pt": {"filterType": "text", "type": "equals", "filter": first_pt}},
    )
    rows = call(
        f"{ids.EXPLORER_GRID}.getRowsResponse",
        {f"{ids.EXPLORER_GRID}.getRowsRequest": by_cohort},
        {"url.search": _search(demo_db, soc="Endocrine disorders")},
    )[ids.EXPLORER_GRID]["getRowsResponse"]
    assert [row["group"] for row in rows["rowData"]] == expected


def _cohort_subjects(demo_db, cohort: str) -> list[str]:
    """The USUBJIDs of a cohort in the latest cut, read from the stored derivations."""
    from sqlalchemy import text

    from safety_dash.db.engine import get_engine

    with get_engine(demo_db.url).connect() as connection:
        rows = connection.execute(
            text("SELECT usubjid FROM derived_subjects WHERE run_id = :run AND cohort = :cohort ORDER BY usubjid"),
            {"run": demo_db.run_ids[-1], "cohort": cohort},
        )
        return [row[0] for row in rows]


def test_subject_suggestions_keep_to_the_cohort_filter(call, demo_db):
    cohort = "Ph I 3 mg/kg"
    members = _cohort_subjects(demo_db, cohort)
    assert 0 < len(members) < 20
    out = call(f"{ids.SUBJECT_PICKER}.options", {f"{ids.SUBJECT_PICKER}.search_value": "", "url.search":
                                                 _search(demo_db, cohort=cohort)})  # fmt: skip
    assert [option["value"] for option in out[ids.SUBJECT_PICKER]["options"]] == members


def test_subjects_worth_a_look_keep_to_the_cohort_filter(call, demo_db):
    cohort = "Ph Ib NPC"
    out = call(f"{ids.SUBJECT_TIMELINE}.figure", {"url.search": _search(demo_db, cohort=cohort)})
    prompt = _text(out[ids.SUBJECT_HEADER]["children"])
    assert f"start with these of cohort {cohort}" in prompt
    listed = set(re.findall(r'"children": "(QL1706-DEMO-[0-9-]+)"', prompt))
    assert listed and listed <= set(_cohort_subjects(demo_db, cohort))


def test_quarantined_rows_keep_to_the_cohort_filter(call, demo_db):
    # The demo's cut 2 quarantines two AE rows: one whose USUBJID is not in DM (no cohort: every cohort sees it) and
    # one with an impossible onset date, of a subject of some cohort.
    runs = call(f"{ids.DATA_RUNS}.rowData", {"url.search": _search(demo_db)})
    selected = runs[ids.DATA_SELECTED_RUN]["data"]
    request = {f"{ids.DATA_QUARANTINE}.getRowsRequest": {"startRow": 0, "endRow": 25}}

    def rows(cohort):
        state = {f"{ids.DATA_SELECTED_RUN}.data": selected, "url.search": _search(demo_db, cohort=cohort)}
        out = call(f"{ids.DATA_QUARANTINE}.getRowsResponse", request, state)
        return out[ids.DATA_QUARANTINE]["getRowsResponse"]["rowData"]

    every = rows(None)
    assert len(every) == 2
    placed = {}
    for row in every:
        subject = json.loads(row["raw"])["USUBJID"]
        for cohort in ("Ph I 3 mg/kg", "Ph Ib NPC", "Ph Ib NSCLC", "Ph Ib Other", "Ph Ib Cervical", "Ph I 5 mg/kg",
                       "Ph I 10 mg/kg", "Ph I 1 mg/kg", "Ph I 0.3 mg/kg"):  # fmt: skip
            if subject in _cohort_subjects(demo_db, cohort):
                placed[subject] = cohort
    assert len(placed) == 1  # one row's subject is in DM, the other's is not
    ((subject, own),) = placed.items()
    other = "Ph Ib Other" if own != "Ph Ib Other" else "Ph Ib NPC"
    assert len(rows(own)) == 2
    kept = rows(other)
    assert [json.loads(row["raw"])["USUBJID"] for row in kept] != [subject] and len(kept) == 1
    title = call(
        f"{ids.DATA_QUARANTINE_TITLE}.children",
        {f"{ids.DATA_SELECTED_RUN}.data": selected, "url.search": _search(demo_db, cohort=other)},
    )
    assert title[ids.DATA_QUARANTINE_TITLE]["children"] == (
        f"Quarantined rows of run {selected} that may concern cohort {other}: 1 (1 of other cohorts' subjects not "
        "shown; rows naming no known subject are always shown)"
    )
