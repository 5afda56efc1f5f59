"""The Signals page on the demo study (500 subjects, seed 1706): the flagged rows first, a selected signal's
numbers, its subjects and its listing with x₁ marked (over HTTP), the Overview's Signals card, and a monitor's path
in headless Chromium: click the flagged signal, land on its listing with the new subjects marked, and the shared
address opens the same; from the Overview the question "which immune-related events are rising in the 5 mg/kg
cohort, since when, and in whom?" is answered in at most three clicks.

The flagged rows and their numbers are those of ``python -m safety_dash signals`` on the demo (DOMAIN.md §7). The grid
pages on the server: its rows are read here as the browser reads them, a getRowsRequest at a time."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from safety_dash.views.signals import Signal
from safety_dash.web import ids
from safety_dash.web.dashcall import call_callback
from safety_dash.web.state import ViewState, state_href, state_to_search
from tests.web.conftest import PASSWORD, USERNAME, sign_in_client

HEP, ENDO = "Hepatobiliary disorders", "Endocrine disorders"
RISING_NSCLC = Signal("rising", "Ph Ib NSCLC", HEP, "Hepatitis")
FLAGGED_CUT3 = [
    Signal("cohort", "Ph Ib NSCLC", HEP, "Hepatitis"),
    Signal("cohort", "Ph Ib NPC", ENDO, "Hypothyroidism"),
    RISING_NSCLC,
    Signal("rising", "ALL", HEP, "Hepatitis"),
]
MAX_RESPONSE_BYTES = 300_000
PAGE = 12  # the grid's page size
FIRST_PAGE = {"startRow": 0, "endRow": PAGE, "sortModel": [], "filterModel": {}}
BY_P_DESCENDING = [{"colId": "p_one_sided", "sort": "desc"}]
PT_HAS_HEPATITIS = {"pt": {"filterType": "text", "type": "contains", "filter": "HEPATITIS"}}


@pytest.fixture
def call(signal_web_app):
    client = signal_web_app.server.test_client()
    assert sign_in_client(client).status_code == 302

    def _call(output, inputs, state=None, changed=None):
        answer = call_callback(client, signal_web_app, output, inputs, state, changed)
        assert answer.status == 200, (output, answer)
        assert answer.n_bytes < MAX_RESPONSE_BYTES, (output, answer.n_bytes)
        return answer.outputs

    return _call


def _state(db, **fields) -> ViewState:
    return ViewState(study=db.study_id, cut=db.run_ids[-1], **fields)


def _selected(db, signal: Signal = RISING_NSCLC, **fields) -> str:
    group = None if signal.group == "ALL" else signal.group
    return state_to_search(_state(db, soc=signal.soc, pt=signal.pt, test=signal.test, group=group, **fields))


def _text(component) -> str:
    return json.dumps(component, ensure_ascii=False)


def _page(call, search: str, request: dict = FIRST_PAGE) -> dict:
    """The grid's answer to ``request``: rowData and rowCount."""
    out = call(f"{ids.SIGNALS_GRID}.getRowsResponse", {f"{ids.SIGNALS_GRID}.getRowsRequest": request},
               {"url.search": search})  # fmt: skip
    return out[ids.SIGNALS_GRID]["getRowsResponse"]


def _every_row(call, search: str, sort: list | None = None, filters: dict | None = None) -> list[dict]:
    """Every row of the grid, a request of 100 at a time (the most the server answers), in the grid's order."""
    rows: list[dict] = []
    while True:
        request = {"startRow": len(rows), "endRow": len(rows) + 100, "sortModel": sort or [],
                   "filterModel": filters or {}}  # fmt: skip
        page = _page(call, search, request)
        rows += page["rowData"]
        if not page["rowData"] or len(rows) >= page["rowCount"]:
            assert len(rows) == page["rowCount"]
            return rows


def _forest_keys(call, search: str, pagination, request) -> list[str]:
    """The row keys the forest draws, top first."""
    inputs = {f"{ids.SIGNALS_GRID}.paginationInfo": pagination, f"{ids.SIGNALS_GRID}.getRowsRequest": request,
              "url.search": search}  # fmt: skip
    trace = call(f"{ids.SIGNALS_FOREST}.figure", inputs)[ids.SIGNALS_FOREST]["figure"]["data"][0]
    return [point[0] for point in trace["customdata"][::-1]]


def test_the_grid_lists_the_flagged_rows_first(call, signal_demo_db):
    search = state_to_search(_state(signal_demo_db))
    page = _page(call, search)
    rows = page["rowData"]
    assert len(rows) == PAGE and page["rowCount"] == 499  # one page goes to the browser, and the count
    assert [row["key"] for row in rows[:4]] == [s.key for s in FLAGGED_CUT3]
    assert [row["since"] for row in rows[:4]] == ["cut 3 · 2023-03-31", "cut 2 · 2022-09-30", "cut 3 · 2023-03-31",
                                                  "cut 3 · 2023-03-31"]  # fmt: skip
    assert not any(row["selected"] for row in rows)  # no signal in the address
    every = _every_row(call, search)
    assert len(every) == 499 and sum(row["flagged"] for row in every) == 4
    assert len({row["key"] for row in every}) == 499  # the pages neither repeat nor skip a row
    out = call(f"{ids.SIGNALS_COUNT}.children", {"url.search": search})
    assert out[ids.SIGNALS_COUNT]["children"].startswith("4 flagged of 499 rows")
    assert out[ids.SIGNALS_LISTING_PANEL]["hidden"] is True
    assert "rising: since cut 2 (2022-09-30)" in out[ids.SIGNALS_SCOPE]["children"]


def test_a_selected_signal_shows_its_numbers_and_subjects(call, signal_demo_db):
    out = call(f"{ids.SIGNALS_COUNT}.children", {"url.search": _selected(signal_demo_db)})
    detail = _text(out[ids.SIGNALS_DETAIL]["children"])
    assert out[ids.SIGNALS_DETAIL_TITLE]["children"] == "Hepatitis rising in Ph Ib NSCLC"
    for text in ("x₁ · new since cut 2 (2022-09-30)", "14 / 20.1 PY = 69.7 per 100 PY", "2 / 30.9 PY = 6.5 per 100 PY",
                 "10.8 (2.48–97.8)", "flagged since cut 3 · 2023-03-31", "Subjects of x₁ (14)"):  # fmt: skip
        assert text in detail, text
    assert detail.count("/subject?") == 14
    rows = _page(call, _selected(signal_demo_db))["rowData"]
    assert [row["key"] for row in rows if row["selected"]] == [RISING_NSCLC.key]  # highlighted on the grid
    assert out[ids.SIGNALS_LISTING_PANEL]["hidden"] is False
    trend = out[ids.SIGNALS_TREND]["figure"]["data"]
    assert [t["name"] for t in trend] == ["x₀: before it", "x₁: since the cut before", "flagged"]
    assert trend[1]["x"] == ["2022-09-30", "2023-03-31"]


def test_an_alert_link_selects_the_signal_by_cohort(call, signal_demo_db):
    # The alerts link a signal as /signals?...&cohort=<group>&soc=..&pt=..&test=..: the cohort filter is its group.
    search = state_to_search(_state(signal_demo_db, cohort="Ph Ib NPC", soc=ENDO, pt="Hypothyroidism")) + "&test=cohort"
    out = call(f"{ids.SIGNALS_COUNT}.children", {"url.search": search})
    assert out[ids.SIGNALS_DETAIL_TITLE]["children"] == "Hypothyroidism out of line in Ph Ib NPC"
    assert "Subjects of x₁ (27)" in _text(out[ids.SIGNALS_DETAIL]["children"])
    rows = _every_row(call, search)
    assert {row["group"] for row in rows} == {"Ph Ib NPC"}
    assert [row["key"] for row in rows if row["selected"]] == [FLAGGED_CUT3[1].key]


def test_a_row_click_writes_the_signal_into_the_address(call, signal_demo_db):
    cell = {"colId": "pt", "value": "Hepatitis", "rowIndex": 2, "rowId": RISING_NSCLC.key}
    out = call("url.search", {f"{ids.SIGNALS_GRID}.cellClicked": cell},
               {"url.search": state_to_search(_state(signal_demo_db))})  # fmt: skip
    query = parse_qs(out["url"]["search"].lstrip("?"))
    assert (query["test"], query["group"], query["soc"], query["pt"]) == (["rising"], ["Ph Ib NSCLC"], [HEP],
                                                                          ["Hepatitis"])  # fmt: skip


def test_the_listing_marks_the_new_subjects_first(call, signal_demo_db):
    request = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}
    out = call(f"{ids.SIGNALS_LISTING}.getRowsResponse", {f"{ids.SIGNALS_LISTING}.getRowsRequest": request},
               {"url.search": _selected(signal_demo_db)})  # fmt: skip
    rows = out[ids.SIGNALS_LISTING]["getRowsResponse"]["rowData"]
    marked = [row for row in rows if row["X1"]]
    assert len({row["USUBJID"] for row in marked}) == 14
    assert rows[: len(marked)] == marked  # x₁'s records first
    assert {row["SIGNAL_PART"] for row in marked} == {"x₁ · new since cut 2"}
    assert {row["COHORT"] for row in rows} == {"Ph Ib NSCLC"}
    assert {row["SIGNAL_PART"] for row in rows if not row["X1"]} <= {"x₀ · before cut 2", ""}


def test_the_forest_draws_the_grids_page(call, signal_demo_db):
    inputs = {f"{ids.SIGNALS_GRID}.paginationInfo": None, f"{ids.SIGNALS_GRID}.getRowsRequest": None,
              "url.search": _selected(signal_demo_db)}  # fmt: skip
    out = call(f"{ids.SIGNALS_FOREST}.figure", inputs)
    trace = out[ids.SIGNALS_FOREST]["figure"]["data"][0]
    assert len(trace["y"]) == 12  # one page of the grid, before the grid says which: the first
    assert [point[0] for point in trace["customdata"][::-1][:4]] == [s.key for s in FLAGGED_CUT3]  # first on top
    assert trace["marker"]["line"]["width"][::-1][2] == 2.5  # the selected signal is ringed


def test_the_grid_sorts_and_filters_on_the_server(call, signal_demo_db):
    search = _selected(signal_demo_db)
    every = _every_row(call, search)
    # p, largest first: every row still there, in p's order, the smallest p (the flagged rows') last.
    by_p = _every_row(call, search, sort=BY_P_DESCENDING)
    assert sorted(row["key"] for row in by_p) == sorted(row["key"] for row in every)
    ps = [row["p_one_sided"] for row in by_p]
    assert all(a >= b for a, b in zip(ps, ps[1:], strict=False))
    assert by_p[-1]["key"] == FLAGGED_CUT3[0].key
    # A text filter on the PT (case does not matter): only the hepatitis rows, three of them flagged, in the
    # default order (flagged first); with the sort too, the flagged ones last.
    hepatitis = _every_row(call, search, filters=PT_HAS_HEPATITIS)
    assert hepatitis and all("hepatitis" in row["pt"].casefold() for row in hepatitis)
    assert {row["key"] for row in hepatitis} == {row["key"] for row in every if "hepatitis" in row["pt"].casefold()}
    flagged_hepatitis = [s.key for s in FLAGGED_CUT3 if s.pt == "Hepatitis"]
    assert [row["key"] for row in hepatitis[:3]] == flagged_hepatitis
    both = _every_row(call, search, sort=BY_P_DESCENDING, filters=PT_HAS_HEPATITIS)
    assert [row["key"] for row in both[-3:]] == flagged_hepatitis[::-1]
    assert [row["key"] for row in both if row["selected"]] == [RISING_NSCLC.key]
    # The group, ascending: the escalation cohorts by dose (0.3 before 3 before 10), as the browser sorted them.
    by_group = _every_row(call, search, sort=[{"colId": "group", "sort": "asc"}])
    assert list(dict.fromkeys(row["group"] for row in by_group)) == [
        "All cohorts", "Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 3 mg/kg", "Ph I 5 mg/kg", "Ph I 10 mg/kg",
        "Ph Ib Cervical", "Ph Ib NPC", "Ph Ib NSCLC", "Ph Ib Other"]  # fmt: skip


def test_the_forests_second_page_is_the_grids_second_page(call, signal_demo_db):
    search = _selected(signal_demo_db)
    for sort in ([], BY_P_DESCENDING):
        order = [row["key"] for row in _every_row(call, search, sort=sort)]
        # On page 2 the grid's latest request is for rows 13..24 (its blocks are a page long), in its sort.
        request = {"startRow": PAGE, "endRow": 2 * PAGE, "sortModel": sort, "filterModel": {}}
        assert [row["key"] for row in _page(call, search, request)["rowData"]] == order[PAGE : 2 * PAGE]
        pagination = {"currentPage": 1, "pageSize": PAGE, "totalPages": 42, "rowCount": 499, "isLastPageFound": True}
        assert _forest_keys(call, search, pagination, request) == order[PAGE : 2 * PAGE]
        # Back on page 1, the blocks cached: no new request, the latest one still names the sort.
        first = pagination | {"currentPage": 0}
        assert _forest_keys(call, search, first, request) == order[:PAGE]


def test_a_nonsense_page_or_request_draws_the_first_page(call, signal_demo_db):
    search = _selected(signal_demo_db)
    nonsense = {"startRow": "x", "endRow": None, "sortModel": {"colId": "pt"}, "filterModel": ["pt"]}
    keys = _forest_keys(call, search, {"currentPage": "two", "pageSize": -5}, nonsense)
    assert keys[:4] == [s.key for s in FLAGGED_CUT3] and len(keys) == PAGE
    rows = _page(call, search, nonsense)["rowData"]
    assert [row["key"] for row in rows[:4]] == [s.key for s in FLAGGED_CUT3] and len(rows) == PAGE


def test_the_overview_card_counts_and_links_the_flagged_signals(call, signal_demo_db):
    out = call(f"{ids.OVERVIEW_SIGNALS}.children", {"url.search": state_to_search(_state(signal_demo_db))})
    card = _text(out[ids.OVERVIEW_SIGNALS]["children"])
    assert '"children": "4"' in card and "and 1 more" in card
    for label in ("Hepatitis out of line in Ph Ib NSCLC", "Hypothyroidism out of line in Ph Ib NPC",
                  "Hepatitis rising in Ph Ib NSCLC"):  # fmt: skip
        assert label in card
    assert "/signals?study=QL1706-DEMO&amp;" not in card and "test=rising&group=Ph%20Ib%20NSCLC" in card


def test_the_first_cut_has_no_rising_rows(call, signal_demo_db):
    search = state_to_search(ViewState(study=signal_demo_db.study_id, cut=signal_demo_db.run_ids[0]))
    out = call(f"{ids.SIGNALS_SCOPE}.children", {"url.search": search})
    assert {row["test_label"] for row in _every_row(call, search)} == {"Out of line"}
    assert "the study's first cut: no rising test" in out[ids.SIGNALS_SCOPE]["children"]


# --- in the browser ----------------------------------------------------------------------------------------------


def _wait(dash_duo, condition, timeout=30, message=""):
    wait = WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda _driver: condition(), message)


def _sign_in(dash_duo, app) -> str:
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    dash_duo.driver.get(base + "/")
    _wait(dash_duo, lambda: "/login" in dash_duo.driver.current_url, message="not sent to the sign-in form")
    dash_duo.find_element("#username").send_keys(USERNAME)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#sign-in").click()
    dash_duo.wait_for_element(f"#{ids.PAGE_CONTENT}", timeout=20)
    return base


def _query(dash_duo) -> dict[str, list[str]]:
    return parse_qs(urlparse(dash_duo.driver.current_url).query)


# The row index of the grid row showing a test, group and PT (the PT sits in the pinned column, the rest beside it).
ROW_INDEX = """
const [test, group, pt] = arguments;
for (const row of document.querySelectorAll('#signals-grid .ag-center-cols-container .ag-row')) {
  const cell = c => (row.querySelector(`.ag-cell[col-id='${c}']`) || {}).textContent;
  const index = row.getAttribute('row-index');
  const pinned = document.querySelector(`#signals-grid .ag-pinned-left-cols-container .ag-row[row-index='${index}']`);
  const term = pinned && (pinned.querySelector(".ag-cell[col-id='pt']") || {}).textContent;
  if (cell('test_label') === test && cell('group') === group && term === pt) return index;
}
return null;
"""


# Every loaded row of the listing (the grid draws only the rows in view): subject, x₁ mark, "Counted in".
LISTING_ROWS = """
const out = [];
window.dash_ag_grid.getApi(arguments[0]).forEachNode(n => { if (n.data) out.push([n.data.USUBJID, n.data.X1,
                                                                                 n.data.SIGNAL_PART]); });
return out;
"""


def _wait_for_new_subjects(dash_duo) -> set[str]:
    """The subjects the listing marks as x₁, once it shows them: 14, their records first and tinted."""

    def marked():
        rows = dash_duo.driver.execute_script(LISTING_ROWS, ids.SIGNALS_LISTING) or []
        return rows if len({usubjid for usubjid, x1, _ in rows if x1}) == 14 else None

    rows = _wait(dash_duo, marked, message="the 14 new subjects are not marked")
    flags = [x1 for _, x1, _ in rows]
    assert flags == sorted(flags, reverse=True)  # x₁'s records first
    assert {part for _, x1, part in rows if x1} == {"x₁ · new since cut 2"}
    drawn = dash_duo.find_elements(f"#{ids.SIGNALS_LISTING} .ag-pinned-left-cols-container .ag-row")
    assert drawn and all("row-x1" in row.get_attribute("class") for row in drawn[:5])  # the first rows tinted
    return {usubjid for usubjid, x1, _ in rows if x1}


def test_click_the_flagged_signal_and_share_its_address(dash_duo, signal_web_app, signal_demo_db):
    base = _sign_in(dash_duo, signal_web_app)
    dash_duo.driver.get(base + state_href("/signals", _state(signal_demo_db)))
    dash_duo.wait_for_element(f"#{ids.SIGNALS_GRID} .ag-row", timeout=30)
    index = _wait(dash_duo, lambda: dash_duo.driver.execute_script(ROW_INDEX, "Rising", "Ph Ib NSCLC", "Hepatitis"))
    cell = dash_duo.find_element(
        f"#{ids.SIGNALS_GRID} .ag-pinned-left-cols-container .ag-row[row-index='{index}'] .ag-cell[col-id='pt']"
    )
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    _wait(dash_duo, lambda: _query(dash_duo).get("test") == ["rising"], message="the click did not select it")
    assert _query(dash_duo)["group"] == ["Ph Ib NSCLC"] and _query(dash_duo)["pt"] == ["Hepatitis"]
    dash_duo.wait_for_text_to_equal(f"#{ids.SIGNALS_DETAIL_TITLE}", "Hepatitis rising in Ph Ib NSCLC", timeout=20)
    marked = _wait_for_new_subjects(dash_duo)
    dash_duo.wait_for_contains_text(f"#{ids.SIGNALS_DETAIL}", "flagged since cut 3 · 2023-03-31", timeout=10)

    shared = dash_duo.driver.current_url  # the address a monitor would send
    dash_duo.driver.get(base + "/")
    dash_duo.wait_for_element(f"#{ids.OVERVIEW_CARDS} .card", timeout=30)
    dash_duo.driver.get(shared)
    dash_duo.wait_for_text_to_equal(f"#{ids.SIGNALS_DETAIL_TITLE}", "Hepatitis rising in Ph Ib NSCLC", timeout=30)
    assert _wait_for_new_subjects(dash_duo) == marked
    assert dash_duo.get_logs() == []


def test_from_the_overview_in_three_clicks(dash_duo, signal_web_app, signal_demo_db):
    # Which immune-related events are rising in the 5 mg/kg cohort (Ph Ib NSCLC), since when, and in whom?
    _sign_in(dash_duo, signal_web_app)
    dash_duo.wait_for_element(f"#{ids.OVERVIEW_SIGNALS} .signal-list a", timeout=30)
    links = dash_duo.find_elements(f"#{ids.OVERVIEW_SIGNALS} .signal-list a")
    rising = next(link for link in links if link.text == "Hepatitis rising in Ph Ib NSCLC")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", rising)
    rising.click()  # click 1: which (an immune-related, hepatic-basket term), and since when
    _wait(dash_duo, lambda: urlparse(dash_duo.driver.current_url).path == "/signals")
    dash_duo.wait_for_contains_text(f"#{ids.SIGNALS_DETAIL}", "flagged since cut 3 · 2023-03-31", timeout=30)
    dash_duo.wait_for_contains_text(f"#{ids.SIGNALS_DETAIL}", "hepatic", timeout=10)
    marked = _wait_for_new_subjects(dash_duo)  # in whom
    subject = sorted(marked)[0]
    link = next(a for a in dash_duo.find_elements(f"#{ids.SIGNALS_DETAIL} .subject-links a") if a.text == subject)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()  # click 2: the subject's profile
    _wait(dash_duo, lambda: urlparse(dash_duo.driver.current_url).path == "/subject")
    dash_duo.wait_for_contains_text(f"#{ids.SUBJECT_HEADER}", subject, timeout=30)
    # the profile's lab panel grades the cut's laboratory values: let it finish before the server stops
    _wait(dash_duo, lambda: dash_duo.find_element(f"#{ids.SUBJECT_LAB_PANEL}").text.strip() != "")
    assert dash_duo.get_logs() == []
