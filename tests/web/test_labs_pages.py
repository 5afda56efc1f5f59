"""The Labs and eDISH pages and the subject's lab panel: over HTTP on the hand-built study of
``tests/views/test_labs.py`` (numbers worked by hand from CTCAE v5.0), on the same study without LB ("this cut has
no laboratory data", never a failure), and on the CDISC pilot; and a monitor's path in headless Chromium: open
eDISH, see 01-705-1186 in the potential Hy's law range, click it, land on the subject with its lab panel."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine
from safety_dash.web import ids
from safety_dash.web.auth import create_user
from safety_dash.web.dashcall import call_callback
from safety_dash.web.state import ViewState, parse_state, state_to_search
from tests.views.test_labs import PILOT_CASE, lab_study, no_lab_study, pilot  # noqa: F401  (fixtures, by name)
from tests.web.conftest import PASSWORD, ROLE, USERNAME, sign_in_client

MAX_RESPONSE_BYTES = 300_000


def make_app(study):
    """A fresh app on ``study``'s database, with the test user."""
    from safety_dash.web.app import create_app

    create_user(get_engine(study.url), USERNAME, PASSWORD, ROLE, replace=True)
    settings = dataclasses.replace(load_settings(), database_url=study.url, secret_key="test-secret-key",
                                   session_minutes=30.0)  # fmt: skip
    return create_app(settings)


def caller(app):
    """Call a callback of ``app`` as a signed-in browser; every answer is 200 and under 300 KB."""
    client = app.server.test_client()
    assert sign_in_client(client).status_code == 302

    def call(output, inputs, state=None, changed=None, status=200):
        answer = call_callback(client, app, output, inputs, state, changed)
        assert answer.status == status, (output, answer)
        assert answer.n_bytes < MAX_RESPONSE_BYTES, (output, answer.n_bytes)
        return answer.outputs

    return call


@pytest.fixture(scope="module")
def call(lab_study):  # noqa: F811
    return caller(make_app(lab_study))


def _search(study, **fields) -> str:
    return state_to_search(ViewState(study=study.study_id, cut=study.run_id, **fields))


def _text(component) -> str:
    return json.dumps(component, ensure_ascii=False)


# --- Labs page -----------------------------------------------------------------------------------------------------


def test_the_labs_table_lists_the_graded_tests_and_selects_the_first(call, lab_study):  # noqa: F811
    out = call(f"{ids.LABS_TABLE}.rowData", {"url.search": _search(lab_study)})
    rows = out[ids.LABS_TABLE]["rowData"]
    assert [r["label"] for r in rows[:2]] == ["Alanine Aminotransferase (ALT), high", "Potassium (K), low"]
    alt = rows[0]
    assert [alt[k] for k in ("n_with_value", "n_worst_grade_1", "n_worst_grade_2", "n_worst_grade_3",
                             "n_grade_3_or_more", "n_hys_law")] == [3, 1, 1, 1, 1, 1]  # fmt: skip
    assert out[ids.LABS_TABLE]["selectedRows"] == [{"key": '["ALT", "H"]'}]
    assert out[ids.LABS_TEST]["value"] == "ALT"
    assert out[ids.LABS_DIRECTION]["options"] == [{"label": "High", "value": "high"}]
    assert out[ids.LABS_ALERT]["children"] is None


def test_the_grade_filter_and_the_cohort_narrow_the_labs_table(call, lab_study):  # noqa: F811
    out = call(f"{ids.LABS_TABLE}.rowData", {"url.search": _search(lab_study, cohort="A", min_grade=3)})
    assert [r["label"] for r in out[ids.LABS_TABLE]["rowData"]] == ["Potassium (K), low"]
    assert out[ids.LABS_TEST]["value"] == "K" and out[ids.LABS_DIRECTION]["value"] == "low"
    assert out[ids.LABS_TABLE_TITLE]["children"].endswith("· A")
    assert "tests where a subject reached grade ≥ 3" in out[ids.LABS_SCOPE]["children"]
    out = call(f"{ids.LABS_TABLE}.rowData", {"url.search": _search(lab_study, min_grade=5)})
    assert out[ids.LABS_TABLE]["rowData"] == []
    assert "laboratory grades go up to 4" in _text(out[ids.LABS_ALERT]["children"])
    out = call(f"{ids.LABS_TABLE}.rowData", {"url.search": _search(lab_study, cohort="NOPE")})
    assert out[ids.LABS_TABLE]["rowData"] == []
    assert "Cohort NOPE has no subject in the safety population" in _text(out[ids.LABS_ALERT]["children"])


def test_the_test_panels_show_grades_shift_and_visits(call, lab_study):  # noqa: F811
    out = call(f"{ids.LABS_BOX}.figure", {"url.search": _search(lab_study, lab="ALT")})
    worst = {trace["name"]: trace for trace in out[ids.LABS_WORST]["figure"]["data"]}
    # All cohorts (n=3), A (n=2: grades 1 and 2), B (n=1: grade 3); the bars are drawn bottom-up.
    assert worst["Grade 3"]["y"] == ["B (n=1)", "A (n=2)", "All cohorts (n=3)"]
    assert worst["Grade 3"]["x"] == [100.0, 0.0, 33.33]
    assert worst["Grade 2"]["x"] == [0.0, 50.0, 33.33]
    shift = _text(out[ids.LABS_SHIFT]["children"])
    assert '"shift-worse"' in shift  # baseline grade 0 -> worst 2 (T1-001)
    box = out[ids.LABS_BOX]["figure"]
    assert box["layout"]["xaxis"]["categoryarray"] == ["SCREENING", "WEEK 2", "WEEK 4", "FOLLOW-UP"]
    points = [trace for trace in box["data"] if trace.get("boxpoints") == "all"]
    assert sorted(s for trace in points for s in trace["customdata"]) == ["T1-001", "T1-002", "T1-003"]
    assert (
        out[ids.LABS_WORST_TITLE]["children"]
        == "Alanine Aminotransferase (ALT), high: worst on-treatment grade by cohort"
    )


def test_a_test_without_criteria_shows_its_values_only(call, lab_study):  # noqa: F811
    search = _search(lab_study, lab="BILI")  # graded high; its low direction does not exist
    out = call(f"{ids.LABS_BOX}.figure", {"url.search": search})
    assert out[ids.LABS_WORST_TITLE]["children"].startswith("Bilirubin (BILI), high")
    out = call(f"{ids.LABS_TABLE}.rowData", {"url.search": _search(lab_study, lab="NOPE")})
    assert "Test NOPE has no record in this cut; showing ALT." in _text(out[ids.LABS_ALERT]["children"])


def test_picking_a_test_or_clicking_a_row_writes_the_address(call, lab_study):  # noqa: F811
    search = _search(lab_study)
    out = call("url.search", {f"{ids.LABS_TABLE}.cellClicked": {"colId": "label", "rowId": '["K", "L"]'}},
               {"url.search": search}, changed=[f"{ids.LABS_TABLE}.cellClicked"])  # fmt: skip
    state = parse_state(out["url"]["search"])
    assert (state.lab, state.lab_dir, state.study, state.cut) == ("K", "low", lab_study.study_id, lab_study.run_id)
    out = call("url.search", {f"{ids.LABS_TEST}.value": "BILI", f"{ids.LABS_DIRECTION}.value": "high"},
               {"url.search": search}, changed=[f"{ids.LABS_TEST}.value"])  # fmt: skip
    assert parse_state(out["url"]["search"]).lab == "BILI"
    # The picker set to the test already shown (the default) adds no history entry.
    call("url.search", {f"{ids.LABS_TEST}.value": "ALT", f"{ids.LABS_DIRECTION}.value": "high"},
         {"url.search": search}, changed=[f"{ids.LABS_TEST}.value"], status=204)  # fmt: skip


# --- eDISH page ----------------------------------------------------------------------------------------------------


def test_edish_rings_the_hys_law_case_and_counts_the_quadrants(call, lab_study):  # noqa: F811
    out = call(f"{ids.EDISH_GRAPH}.figure", {"url.search": _search(lab_study)})
    data = out[ids.EDISH_GRAPH]["figure"]["data"]
    by_name = {trace["name"]: trace for trace in data}
    assert (by_name["A"]["customdata"], by_name["B"]["customdata"]) == (["T1-001"], ["T1-002"])
    ring = by_name["potential Hy's law case"]
    assert (ring["customdata"], ring["x"], ring["y"]) == (["T1-001"], [3.25], [2.5])
    layout = out[ids.EDISH_GRAPH]["figure"]["layout"]
    assert layout["xaxis"]["type"] == layout["yaxis"]["type"] == "log"
    assert sorted(s["x0"] for s in layout["shapes"] if s["yref"] == "paper") == [1, 3.0]  # the 3 x ULN line
    corners = {note["text"] for note in layout["annotations"]}
    assert {"<b>Potential Hy's law range (1)</b>", "Temple's corollary (1)", "Normal range (0)"} <= corners
    cases = _text(out[ids.EDISH_CASES]["children"])
    assert "T1-001" in cases and "T1-002" not in cases and "ALP 2.60×ULN · cholestatic pattern" in cases
    assert "1 potential Hy's law case, the highest bilirubin first" in cases
    quadrants = _text(out[ids.EDISH_QUADRANTS]["children"])
    assert '"All cohorts"' in quadrants
    assert "1 subject without both an on-treatment ALT or AST and a bilirubin" in _text(out[ids.EDISH_NOTE])


def test_edish_follows_the_cohort_and_a_click_opens_the_subject(call, lab_study):  # noqa: F811
    out = call(f"{ids.EDISH_GRAPH}.figure", {"url.search": _search(lab_study, cohort="B")})
    assert [t["name"] for t in out[ids.EDISH_GRAPH]["figure"]["data"]] == ["B"]
    assert "None in this population." in _text(out[ids.EDISH_CASES]["children"])
    search = _search(lab_study, cohort="A", min_grade=3)
    out = call("url.href", {f"{ids.EDISH_GRAPH}.clickData": {"points": [{"customdata": "T1-001"}]}},
               {"url.search": search})  # fmt: skip
    href = out["url"]["href"]
    assert urlparse(href).path == "/subject"
    state = parse_state(urlparse(href).query)
    assert (state.subject, state.cohort, state.min_grade, state.cut) == ("T1-001", "A", 3, lab_study.run_id)


# --- the subject's lab panel ---------------------------------------------------------------------------------------


def test_the_lab_panel_draws_the_subjects_values_and_its_case(call, lab_study):  # noqa: F811
    out = call(f"{ids.SUBJECT_LAB_PANEL}.children", {"url.search": _search(lab_study, subject="T1-001")})
    panel = out[ids.SUBJECT_LAB_PANEL]["children"]
    text = _text(panel)
    assert "potential Hy's law case" in text and "ALP 2.60×ULN: cholestatic pattern" in text
    figures = [c for c in _components(panel) if c.get("props", {}).get("id") == ids.SUBJECT_LAB_GRAPH]
    traces = {t["name"]: t for t in figures[0]["props"]["figure"]["data"]}
    assert set(traces) == {"ALP", "ALT", "BILI", "K"}
    assert traces["ALT"]["y"] == [0.75, 3.25] and traces["ALT"]["visible"] is True
    assert traces["K"]["visible"] is True  # worst grade 3: drawn at first
    assert call(f"{ids.SUBJECT_LAB_PANEL}.children", {"url.search": _search(lab_study)})[ids.SUBJECT_LAB_PANEL][
        "children"] is None  # fmt: skip


def _components(component):
    """Every component dict inside ``component`` (depth first)."""
    if isinstance(component, list):
        for item in component:
            yield from _components(item)
    elif isinstance(component, dict):
        yield component
        yield from _components(component.get("props", {}).get("children"))


# --- a study without LB, the pilot ---------------------------------------------------------------------------------


def test_a_cut_without_lb_says_so_on_every_lab_view(no_lab_study):  # noqa: F811
    call = caller(make_app(no_lab_study))
    search = _search(no_lab_study, lab="ALT", subject="T1-001")
    for output, alert in ((f"{ids.LABS_TABLE}.rowData", ids.LABS_ALERT), (f"{ids.EDISH_GRAPH}.figure", ids.EDISH_ALERT),
                          (f"{ids.SUBJECT_LAB_PANEL}.children", ids.SUBJECT_LAB_PANEL)):  # fmt: skip
        out = call(output, {"url.search": search})
        assert "cut has no laboratory data" in _text(out[alert]["children"]), output
    out = call(f"{ids.LABS_BOX}.figure", {"url.search": search})
    assert out[ids.LABS_DETAIL_ALERT]["children"] is None
    assert "No laboratory data in this cut" in _text(out[ids.LABS_BOX]["figure"])


def test_on_the_pilot_only_01_705_1186_is_in_the_hys_law_range(pilot):  # noqa: F811
    call = caller(make_app(pilot))
    out = call(f"{ids.EDISH_GRAPH}.figure", {"url.search": _search(pilot)})
    upper_right = [
        subject
        for trace in out[ids.EDISH_GRAPH]["figure"]["data"]
        if trace["name"] != "potential Hy's law case"
        for subject, x, y in zip(trace["customdata"], trace["x"], trace["y"], strict=True)
        if x >= 3 and y >= 2
    ]
    assert upper_right == [PILOT_CASE]
    ring = out[ids.EDISH_GRAPH]["figure"]["data"][-1]
    assert (ring["customdata"], ring["x"], ring["y"]) == ([PILOT_CASE], [3.971], [5.944])
    assert sum(len(t["x"]) for t in out[ids.EDISH_GRAPH]["figure"]["data"][:-1]) == 246


# --- in the browser -------------------------------------------------------------------------------------------------


def _wait(dash_duo, condition, timeout=30, message=""):
    wait = WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda _driver: condition(), message)


# The potential Hy's law ring of the eDISH plot: its subject, and whether it sits right of and above both lines.
RING = """
const gd = document.querySelector('#edish-graph .js-plotly-plot');
if (!gd || !gd._fullLayout || !gd._fullLayout.xaxis) return null;
const index = gd.data.findIndex(t => t.name === "potential Hy's law case");
if (index < 0) return null;
const trace = gd.data[index], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
const px = xa.d2p(trace.x[0]), py = ya.d2p(trace.y[0]);
return [trace.customdata[0], px > xa.d2p(3), py < ya.d2p(2), index];
"""


def test_open_edish_click_the_case_and_land_on_its_lab_panel(dash_duo, pilot):  # noqa: F811
    app = make_app(pilot)
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    dash_duo.driver.get(base + "/")
    _wait(dash_duo, lambda: "/login" in dash_duo.driver.current_url, message="not sent to the sign-in form")
    dash_duo.find_element("#username").send_keys(USERNAME)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#sign-in").click()
    dash_duo.wait_for_element(f"#{ids.PAGE_CONTENT}", timeout=20)
    dash_duo.driver.get(base + "/edish")
    ring = _wait(dash_duo, lambda: dash_duo.driver.execute_script(RING), timeout=60, message="no eDISH plot")
    assert ring[:3] == [PILOT_CASE, True, True]  # right of 3 x ULN, above 2 x ULN
    dash_duo.wait_for_contains_text(f"#{ids.EDISH_CASES}", PILOT_CASE, timeout=10)
    point = dash_duo.find_elements(f"#{ids.EDISH_GRAPH} .scatterlayer .trace")[ring[3]].find_element(
        "css selector", ".point")  # fmt: skip
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    ActionChains(dash_duo.driver).move_to_element(point).pause(0.4).click().perform()
    _wait(
        dash_duo, lambda: urlparse(dash_duo.driver.current_url).path == "/subject", message="the click opened nothing"
    )
    query = parse_qs(urlparse(dash_duo.driver.current_url).query)
    assert query["subject"] == [PILOT_CASE] and query["study"] == [pilot.study_id]
    dash_duo.wait_for_contains_text(f"#{ids.SUBJECT_LAB_PANEL}", "potential Hy's law case", timeout=30)
    dash_duo.wait_for_element(f"#{ids.SUBJECT_LAB_GRAPH} .scatterlayer .trace", timeout=20)
    assert "ALP 5.84×ULN: cholestatic pattern" in dash_duo.find_element(f"#{ids.SUBJECT_LAB_PANEL}").text
    assert dash_duo.get_logs() == []
