"""A monitor's path through every page in headless Chromium (dash.testing): sign in, click a SOC and see the PT
grid narrow, click a subject and see the profile, open a shared link to an earlier cut and see its numbers.
Every test ends with an empty browser log."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from safety_dash.db.engine import get_engine
from safety_dash.web import ids
from safety_dash.web.state import ViewState, state_href
from safety_dash.web.views import cut_key, load_overview
from tests.web.conftest import PASSWORD, USERNAME

pytestmark = pytest.mark.browser


def _wait(dash_duo, condition, timeout=20, message=""):
    """Wait for ``condition``; elements re-drawn while it looks are looked up again."""
    wait = WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda _driver: condition(), message)


# The SVG path of the top (most frequent) SOC's widest grade segment: a bar a person would click.
WIDEST_TOP_BAR = """
const traces = document.querySelectorAll('#' + arguments[0] + ' .barlayer .trace');
let best = null, width = 0;
traces.forEach(t => {
  const points = t.querySelectorAll('.point path');
  const top = points[points.length - 1];
  if (!top) return;
  const w = top.getBoundingClientRect().width;
  if (w > width) { width = w; best = top; }
});
return best;
"""


def sign_in(dash_duo, app) -> str:
    """Start the app, sign in through the form; returns the server's base address."""
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    dash_duo.driver.get(base + "/")
    _wait(dash_duo, lambda: "/login" in dash_duo.driver.current_url, message="not sent to the sign-in form")
    dash_duo.find_element("#username").send_keys(USERNAME)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#sign-in").click()
    dash_duo.wait_for_element(f"#{ids.PAGE_CONTENT}", timeout=20)
    return base


def open_page(dash_duo, base: str, path: str, ready: str) -> None:
    """Go to ``path`` and wait until the CSS selector ``ready`` shows."""
    dash_duo.driver.get(base + path)
    dash_duo.wait_for_element(ready, timeout=30)


def url_state(dash_duo) -> dict[str, list[str]]:
    return parse_qs(urlparse(dash_duo.driver.current_url).query)


def grid_values(dash_duo, grid_id: str, column: str) -> list[str]:
    cells = dash_duo.find_elements(f"#{grid_id} .ag-center-cols-container .ag-cell[col-id='{column}']")
    cells += dash_duo.find_elements(f"#{grid_id} .ag-pinned-left-cols-container .ag-cell[col-id='{column}']")
    return [cell.text for cell in cells if cell.text]


def grid_row_count(dash_duo, grid_id: str) -> int:
    """The total the grid's pager reports ("1 to 50 of 540" -> 540); -1 while it does not know it yet ("of more",
    as it says while a refreshed page is on its way)."""
    text = dash_duo.find_element(f"#{grid_id} .ag-paging-row-summary-panel").text
    total = text.rsplit(" of ", 1)[-1].replace(",", "") if " of " in text else ""
    return int(total) if total.isdigit() else -1


def expected_overview(demo_db, run_id: int):
    from safety_dash.config import DEFAULT_BASKETS_FILE
    from safety_dash.web.data import WebContext, load_baskets_file, load_cut

    context = WebContext(get_engine(demo_db.url), load_baskets_file(DEFAULT_BASKETS_FILE))
    return load_overview(cut_key(context, load_cut(context.engine, run_id)), None, None, False, False, None)


def card_value(dash_duo, label: str) -> str:
    for card in dash_duo.find_elements(f"#{ids.OVERVIEW_CARDS} .card"):
        if card.find_element(By.CLASS_NAME, "card-label").text == label:
            return card.find_element(By.CLASS_NAME, "card-value").text
    raise AssertionError(f"no card {label!r}")


def click_soc_bar(dash_duo) -> str:
    """Click the top SOC's widest bar; returns the SOC selected.

    A click that lands while the chart is still being drawn is lost, as it would be for a person: click again, but
    only once the first click has had time to reach the address (a second click on a SOC clears it)."""
    dash_duo.wait_for_element(f"#{ids.EXPLORER_SOC_GRAPH} .barlayer .trace .point path", timeout=20)
    for attempt in range(3):
        bar = dash_duo.driver.execute_script(WIDEST_TOP_BAR, ids.EXPLORER_SOC_GRAPH)
        dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", bar)
        ActionChains(dash_duo.driver).move_to_element(bar).pause(0.3).click().perform()
        try:
            _wait(dash_duo, lambda: "soc" in url_state(dash_duo), timeout=6)
            return url_state(dash_duo)["soc"][0]
        except TimeoutException:
            assert attempt < 2, "the SOC click did not reach the address"
    raise AssertionError("unreachable")


def test_overview_after_sign_in_shows_the_latest_cut(dash_duo, web_app, demo_db):
    sign_in(dash_duo, web_app)
    dash_duo.wait_for_element(f"#{ids.OVERVIEW_CARDS} .card", timeout=30)
    expected = expected_overview(demo_db, demo_db.run_ids[-1])
    assert card_value(dash_duo, "Subjects dosed") == f"{expected.n_dosed:,}"
    assert card_value(dash_duo, "With a TEAE") == f"{expected.counts['teae']:,}"
    dash_duo.wait_for_contains_text(f"#{ids.OVERVIEW_CUT}", f"{demo_db.run_ids[-1]} · cutoff 2023-03-31", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.OVERVIEW_CHANGES}", f"Since cut {demo_db.run_ids[-2]}", timeout=10)
    assert dash_duo.get_logs() == []


def test_grade_filter_writes_the_address_and_narrows_the_cards(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/", f"#{ids.OVERVIEW_CARDS} .card")
    before = int(card_value(dash_duo, "With a TEAE").replace(",", ""))
    dash_duo.find_element(f"#{ids.FILTER_GRADE} input[value='3']").find_element(By.XPATH, "./ancestor::label").click()
    _wait(dash_duo, lambda: url_state(dash_duo).get("grade") == ["3"], message="grade not written to the address")
    assert url_state(dash_duo)["cut"] == [str(demo_db.run_ids[-1])]  # the address pins the cut
    _wait(dash_duo, lambda: int(card_value(dash_duo, "With a TEAE").replace(",", "")) < before)
    assert dash_duo.get_logs() == []


def test_explorer_soc_click_narrows_the_pt_grid(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/explorer", f"#{ids.EXPLORER_GRID} .ag-row")
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.EXPLORER_GRID, "soc")) > 0)
    _wait(dash_duo, lambda: grid_row_count(dash_duo, ids.EXPLORER_GRID) > 0)
    rows_before = grid_row_count(dash_duo, ids.EXPLORER_GRID)
    soc = click_soc_bar(dash_duo)
    _wait(dash_duo, lambda: set(grid_values(dash_duo, ids.EXPLORER_GRID, "soc")) == {soc}, message="grid not narrowed")
    _wait(
        dash_duo,
        lambda: 0 < grid_row_count(dash_duo, ids.EXPLORER_GRID) < rows_before,
        message="the PT grid did not narrow to the SOC's rows",
    )
    dash_duo.wait_for_contains_text(f"#{ids.FILTER_SUMMARY}", f"SOC: {soc}", timeout=10)
    assert dash_duo.get_logs() == []


def test_explorer_pt_click_opens_its_listing_and_onset(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    state = ViewState(study=demo_db.study_id, cut=demo_db.run_ids[-1], soc="Skin and subcutaneous tissue disorders")
    open_page(dash_duo, base, state_href("/explorer", state), f"#{ids.EXPLORER_GRID} .ag-row")
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.EXPLORER_GRID, "pt")) > 0)
    term = grid_values(dash_duo, ids.EXPLORER_GRID, "pt")[0]
    cell = dash_duo.find_elements(f"#{ids.EXPLORER_GRID} .ag-cell[col-id='pt']")[0]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    _wait(dash_duo, lambda: url_state(dash_duo).get("pt") == [term], message="the PT click did not select it")
    _wait(dash_duo, lambda: dash_duo.find_element(f"#{ids.EXPLORER_TERM_PANEL}").is_displayed())
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.EXPLORER_TERM_LISTING, "USUBJID")) > 0)
    dash_duo.wait_for_element(f"#{ids.EXPLORER_TERM_ONSET} .scatterlayer .trace", timeout=20)
    assert dash_duo.get_logs() == []


def test_explorer_soc_then_pt_click_fills_the_term_listing(dash_duo, web_app, demo_db):
    # Before the fix the listing stayed at "1 to ? of more": its requests while no PT was selected went unanswered.
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/explorer", f"#{ids.EXPLORER_GRID} .ag-row")
    soc = click_soc_bar(dash_duo)
    _wait(dash_duo, lambda: set(grid_values(dash_duo, ids.EXPLORER_GRID, "soc")) == {soc}, message="grid not narrowed")
    term = grid_values(dash_duo, ids.EXPLORER_GRID, "pt")[0]
    cell = dash_duo.find_elements(f"#{ids.EXPLORER_GRID} .ag-cell[col-id='pt']")[0]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    _wait(dash_duo, lambda: url_state(dash_duo).get("pt") == [term], message="the PT click did not select it")
    _wait(dash_duo, lambda: grid_row_count(dash_duo, ids.EXPLORER_TERM_LISTING) > 0, message="listing stuck")
    assert set(grid_values(dash_duo, ids.EXPLORER_TERM_LISTING, "USUBJID"))
    assert dash_duo.get_logs() == []


def test_listing_subject_click_opens_the_profile(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/listings", f"#{ids.LISTING_GRID} .ag-row")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_COUNT}", "AE records in data cut", timeout=20)
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.LISTING_GRID, "USUBJID")) > 0)
    subject = grid_values(dash_duo, ids.LISTING_GRID, "USUBJID")[0]
    first = dash_duo.find_elements(f"#{ids.LISTING_GRID} .ag-cell[col-id='USUBJID']")[0]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)
    first.click()
    _wait(dash_duo, lambda: urlparse(dash_duo.driver.current_url).path == "/subject", message="profile not opened")
    assert url_state(dash_duo)["subject"] == [subject]
    dash_duo.wait_for_contains_text(f"#{ids.SUBJECT_HEADER}", subject, timeout=20)
    dash_duo.wait_for_element(f"#{ids.SUBJECT_TIMELINE} .barlayer .trace", timeout=20)
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.SUBJECT_EVENTS, "PT")) > 0)
    assert dash_duo.get_logs() == []


def test_shared_link_to_an_earlier_cut_shows_its_numbers(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    first = demo_db.run_ids[0]
    open_page(
        dash_duo, base, state_href("/", ViewState(study=demo_db.study_id, cut=first)), f"#{ids.OVERVIEW_CARDS} .card"
    )
    expected = expected_overview(demo_db, first)
    latest = expected_overview(demo_db, demo_db.run_ids[-1])
    assert expected.n_dosed != latest.n_dosed  # the cuts differ, so the test can tell them apart
    _wait(dash_duo, lambda: card_value(dash_duo, "Subjects dosed") == f"{expected.n_dosed:,}")
    dash_duo.wait_for_contains_text(f"#{ids.FILTER_CUT}", f"Cut {first}", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.OVERVIEW_CHANGES}", "First data cut", timeout=10)
    assert dash_duo.get_logs() == []


def test_rates_page_draws_the_forest_and_its_trend(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    state = ViewState(study=demo_db.study_id, cut=demo_db.run_ids[-1], basket="skin")
    open_page(dash_duo, base, state_href("/rates", state), f"#{ids.RATES_FOREST} .scatterlayer .trace")
    dash_duo.wait_for_contains_text(f"#{ids.RATES_TITLE}", "skin (basket)", timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.RATES_NUMBERS}", "All cohorts", timeout=20)
    dash_duo.wait_for_element(f"#{ids.RATES_DIFFERENCE} .scatterlayer .trace", timeout=20)
    _wait(dash_duo, lambda: len(dash_duo.find_elements(f"#{ids.RATES_TREND} .scatterlayer .trace")) > 1)
    assert dash_duo.get_logs() == []


def test_onset_page_draws_curves_and_the_summary(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/onset", f"#{ids.ONSET_CURVES} .scatterlayer .trace")
    dash_duo.wait_for_contains_text(f"#{ids.ONSET_SUMMARY}", "All cohorts", timeout=20)
    dash_duo.wait_for_element(f"#{ids.ONSET_DISTRIBUTION} .boxlayer .trace", timeout=20)
    assert dash_duo.get_logs() == []


def test_data_page_lists_runs_and_quarantined_rows(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/data", f"#{ids.DATA_RUNS} .ag-row")
    _wait(dash_duo, lambda: len(grid_values(dash_duo, ids.DATA_QUARANTINE, "reason")) == 2)
    reasons = " ".join(grid_values(dash_duo, ids.DATA_QUARANTINE, "reason"))
    assert "not a valid date" in reasons
    assert dash_duo.get_logs() == []


def test_subject_page_without_a_subject_suggests_some(dash_duo, web_app, demo_db):
    base = sign_in(dash_duo, web_app)
    open_page(dash_duo, base, "/subject", f"#{ids.SUBJECT_HEADER} .small-table a")
    link = dash_duo.find_elements(f"#{ids.SUBJECT_HEADER} .small-table a")[0]
    subject = link.text
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    _wait(dash_duo, lambda: url_state(dash_duo).get("subject") == [subject])
    dash_duo.wait_for_contains_text(f"#{ids.SUBJECT_HEADER}", subject, timeout=20)
    assert dash_duo.get_logs() == []


# Parts of each figure the mode bar (top right, shown on hover) lies over: legend entries and the plot area.
MODEBAR_OVERLAPS = """
function box(el) { const r = el.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; }
function hit(a, b) { return a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b; }
const out = [];
document.querySelectorAll('.js-plotly-plot').forEach(plot => {
  const bar = plot.querySelector('.modebar');
  if (!bar) return;
  const m = box(bar);
  plot.querySelectorAll('.legend .traces, .nsewdrag').forEach(part => {
    const b = box(part);
    if (b.r > b.l && hit(m, b)) out.push(plot.id + ': ' + (part.textContent || 'plot area'));
  });
});
return out;
"""


def test_mode_bar_covers_no_legend_entry_and_no_data(dash_duo, web_app, demo_db):
    # Before the fix it covered "Grade 3" / "Grade 4" on the explorer and the top of the forest plots.
    base = sign_in(dash_duo, web_app)
    state = ViewState(study=demo_db.study_id, cut=demo_db.run_ids[-1], soc="Endocrine disorders", pt="Hypothyroidism")
    pages = {
        state_href("/explorer", state): [ids.EXPLORER_SOC_GRAPH, ids.EXPLORER_PT_GRAPH, ids.EXPLORER_TERM_ONSET],
        state_href("/rates", state.replace(soc=None, pt=None, basket="skin")): [ids.RATES_FOREST, ids.RATES_DIFFERENCE,
                                                                                ids.RATES_TREND],
        "/onset": [ids.ONSET_CURVES, ids.ONSET_DISTRIBUTION],
        state_href("/signals", state.replace(soc="Skin and subcutaneous tissue disorders", pt="Rash", test="cohort",
                                             group="Ph Ib NPC")): [ids.SIGNALS_FOREST, ids.SIGNALS_TREND],
        "/": [ids.OVERVIEW_COHORT_GRAPH],
    }  # fmt: skip
    for path, graphs in pages.items():
        dash_duo.driver.get(base + path)
        for graph in graphs:
            dash_duo.wait_for_element(f"#{graph} .modebar", timeout=30)
            dash_duo.wait_for_element(f"#{graph} .nsewdrag", timeout=30)
        assert dash_duo.driver.execute_script(MODEBAR_OVERLAPS) == [], path
    assert dash_duo.get_logs() == []
