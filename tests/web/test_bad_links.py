"""A bad, stale or foreign address never makes the server fail: every server callback of every page, called as the
browser calls it with such an address and each of its inputs as the trigger, answers (200, or 204 when it has
nothing to change), never HTTP 500 with a traceback; the pages say in words what was wrong."""

from __future__ import annotations

import json

import pytest

from safety_dash.web import ids
from safety_dash.web.dashcall import call_callback, call_callback_key, server_callback_keys
from safety_dash.web.state import ViewState, state_to_search

SUBJECT = "QL1706-DEMO-01-0001"
ROWS_REQUEST = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}}
# The Audit page's callbacks answer admins only: the monitor of this test gets 403 (tests/web/test_auth_roles.py).
ADMIN_ONLY_OUTPUTS = (ids.AUDIT_CHAIN, ids.AUDIT_GRID, ids.AUDIT_DOWNLOAD)

# What each input or state would hold in the browser when the callback runs; by 'id.property', else by property.
SAMPLES = {
    "url.pathname": "/explorer",
    f"{ids.FILTER_STUDY}.value": "QL1706-DEMO",
    f"{ids.FILTER_CUT}.value": 999999,
    f"{ids.FILTER_COHORT}.value": "NOPE",
    f"{ids.FILTER_GRADE}.value": 3,
    f"{ids.FILTER_FLAGS}.value": ["serious"],
    f"{ids.EXPLORER_GRID}.cellClicked": {"colId": "pt", "value": "Rash", "rowIndex": 0},
    f"{ids.ONSET_DISTRIBUTION}.clickData": {"points": [{"customdata": SUBJECT}]},
    f"{ids.RATES_TERM}.value": "pt:Rash",
    f"{ids.RATES_REFERENCE}.value": "Ph I 5 mg/kg",
    f"{ids.ONSET_TERM}.value": "basket:NOPE",
    f"{ids.SUBJECT_PICKER}.value": SUBJECT,
    f"{ids.SUBJECT_PICKER}.search_value": "01",
    f"{ids.DATA_RUNS}.cellClicked": {"colId": "run_id", "rowIndex": 0},
    f"{ids.DATA_RUNS}.rowData": [{"run_id": 999999}],
    f"{ids.DATA_SELECTED_RUN}.data": 999999,
    f"{ids.ALERTS_STATUS}.value": "all",
    f"{ids.ALERTS_GRID}.selectedRows": [{"alert_id": 1}],
    f"{ids.ALERTS_SELECTED}.data": 1,
    f"{ids.ALERTS_COMMENT}.value": "checked",
    f"{ids.SIGNALS_GRID}.cellClicked": {
        "colId": "pt",
        "value": "NOPE",
        "rowIndex": 0,
        "rowId": '["rising", "NOPE", "NOPE", "NOPE"]',
    },
    f"{ids.SIGNALS_FOREST}.clickData": {"points": [{"customdata": ['["cohort", "NOPE", "", "NOPE"]']}]},
    # The signals grid pages on the server; its forest reads the grid's page and latest request: nonsense in both.
    f"{ids.SIGNALS_GRID}.getRowsRequest": {
        "startRow": "x",
        "endRow": -5,
        "sortModel": [{"colId": "NOPE", "sort": "sideways"}, "p_one_sided"],
        "filterModel": {"pt": "hepatitis", "NOPE": {"filterType": "text", "type": "contains", "filter": "x"}},
    },
    f"{ids.SIGNALS_GRID}.paginationInfo": {"currentPage": "two", "pageSize": 10**12},
}
BY_PROPERTY = {
    "clickData": {"points": [{"customdata": ["Rash", 1, 2, 3.0]}]},
    "cellClicked": {"colId": "USUBJID", "value": SUBJECT, "rowIndex": 0},
    "getRowsRequest": ROWS_REQUEST,
    "n_clicks": 1,
    "filterModel": {},
    "columnState": [],
}


def _sample(item: dict):
    name = f"{item['id']}.{item['property']}"
    return SAMPLES.get(name, BY_PROPERTY.get(item["property"]))


def bad_searches(demo_db) -> dict[str, str]:
    """Addresses a person could open: a cut that is gone, a number too large for the database, a cut of another
    study, a study that is not there, and a real cut with terms, cohort, subject and selections that are not."""
    latest = demo_db.run_ids[-1]
    unknown = ViewState(study=demo_db.study_id, cut=latest, cohort="NOPE", soc="NOPE", pt="NOPE", basket="NOPE",
                        subject="NOPE", ref="NOPE")  # fmt: skip
    first = ViewState(study=demo_db.study_id, cut=demo_db.run_ids[0], soc="Skin and subcutaneous tissue disorders",
                      pt="Rash", test="rising")  # fmt: skip
    return {
        "rising signal on a first cut": state_to_search(first),
        "unknown signal": state_to_search(unknown.replace(cohort=None, test="cohort", group="NOPE")),
        "missing cut": "?cut=999999",
        "huge cut": "?cut=99999999999999999999999",
        "foreign cut": f"?study=OTHER-STUDY&cut={latest}",
        "unknown study": "?study=NOPE",
        "unknown names": state_to_search(unknown) + "&test=NOPE&group=NOPE",
    }


@pytest.fixture
def answer(web_app, signed_in):
    def _answer(key, inputs, state, changed):
        return call_callback_key(signed_in, web_app, key, inputs, state, changed)

    return _answer


def test_no_callback_fails_on_a_bad_address(web_app, answer, demo_db, caplog):
    failures = []
    for label, search in bad_searches(demo_db).items():
        for key in server_callback_keys(web_app):
            spec = web_app.callback_map[key]
            values = {f"{i['id']}.{i['property']}": _sample(i) for i in [*spec["inputs"], *spec.get("state", [])]}
            values["url.search"] = search
            names = [f"{i['id']}.{i['property']}" for i in spec["inputs"]]
            state = {f"{i['id']}.{i['property']}": values[f"{i['id']}.{i['property']}"] for i in spec.get("state", [])}
            for trigger in names:
                result = answer(key, {name: values[name] for name in names}, state, [trigger])
                refused = result.status == 403 and any(f"{output}." in key for output in ADMIN_ONLY_OUTPUTS)
                if result.status not in (200, 204) and not refused:
                    failures.append(f"{label}: {key[:70]} triggered by {trigger} -> HTTP {result.status}")
    assert not failures, "\n".join(failures)
    # ... and none of them met an error it did not expect (shown as "could not be computed (reference ...)"):
    unexpected = [record.getMessage() for record in caplog.records if "callback failed" in record.getMessage()]
    assert unexpected == []


def test_explorer_click_on_a_missing_cut_does_nothing(web_app, signed_in):
    click = {"points": [{"customdata": ["Skin and subcutaneous tissue disorders", 3, 10, 8.0]}]}
    result = call_callback(
        signed_in, web_app, "url.search", {f"{ids.EXPLORER_SOC_GRAPH}.clickData": click}, {"url.search": "?cut=999999"}
    )
    assert result.status == 204  # no new address: the page's alert already says the cut does not exist


@pytest.mark.parametrize("search", ["?cut=999999", "?cut=99999999999999999999999"])
def test_the_explorer_says_the_cut_does_not_exist(web_app, signed_in, search):
    result = call_callback(signed_in, web_app, f"{ids.EXPLORER_SOC_GRAPH}.figure", {"url.search": search})
    assert result.status == 200
    assert "does not exist" in json.dumps(result.outputs[ids.EXPLORER_ALERT]["children"])


def test_a_cut_of_another_study_is_named(web_app, signed_in, demo_db):
    search = f"?study=OTHER-STUDY&cut={demo_db.run_ids[-1]}"
    result = call_callback(signed_in, web_app, f"{ids.LISTING_COUNT}.children", {"url.search": search})
    text = json.dumps(result.outputs[ids.LISTING_ALERT]["children"])
    assert f"belongs to study {demo_db.study_id}, not OTHER-STUDY" in text
