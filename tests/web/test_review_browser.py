"""Issue 11 in headless Chromium: a monitor works through cut 3's backlog on the Listings page ("Needs review"),
comments and raises a data query, which the Queries page lists; an admin opens the Audit page and finds those
actions. And after sign-out, the browser's Back button shows the sign-in page, not the subject's data."""

from __future__ import annotations

import dataclasses
import sqlite3
from urllib.parse import urlparse

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.review import load_cut_review_status, review_records
from safety_dash.web import ids
from safety_dash.web.auth import create_user
from tests.web.conftest import PASSWORD, USERNAME
from tests.web.test_pages_browser import _wait, grid_row_count, grid_values, open_page

pytestmark = pytest.mark.browser

ADMIN = "audit.admin"
STUDY = "QL1706-DEMO"


@pytest.fixture
def review_app(signal_demo_db, tmp_path):
    """The app on a copy of the 500-subject demo whose cut 2 the monitor reviewed whole, with an admin."""
    from safety_dash.config import load_settings
    from safety_dash.web.app import create_app

    path = tmp_path / "review-browser.db"
    with sqlite3.connect(signal_demo_db.url.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    create_user(engine, ADMIN, PASSWORD, "admin", actor="test")
    for record_type in ("ae", "subject"):
        records = load_cut_review_status(engine, STUDY, signal_demo_db.run_ids[1], record_type)
        with engine.begin() as connection:
            review_records(connection, STUDY, record_type, zip(records["record_key"], records["version_id"],
                                                               strict=True), USERNAME)  # fmt: skip
    settings = dataclasses.replace(load_settings(), database_url=url, secret_key="test-secret-key",
                                   session_minutes=30.0)  # fmt: skip
    yield create_app(settings, engine=engine), signal_demo_db.run_ids[-1]
    dispose_engine(url)


def sign_in_as(dash_duo, base: str, username: str) -> None:
    """Sign in through the form as ``username`` (the server already runs)."""
    dash_duo.driver.get(base + "/")
    _wait(dash_duo, lambda: "/login" in dash_duo.driver.current_url, message="not sent to the sign-in form")
    dash_duo.find_element("#username").send_keys(username)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#sign-in").click()
    dash_duo.wait_for_element(f"#{ids.PAGE_CONTENT}", timeout=20)


def sign_out(dash_duo) -> None:
    dash_duo.find_element("#sign-out").click()
    _wait(dash_duo, lambda: urlparse(dash_duo.driver.current_url).path == "/login", message="not signed out")
    dash_duo.wait_for_contains_text("main", "You are signed out.", timeout=10)


def only_refusals_after_sign_out(logs: list[dict]) -> bool:
    """The page open at sign-out may ask the server once more and get 401 (then loads the sign-in page)."""
    return all("401" in entry["message"] for entry in logs)


def click(dash_duo, selector: str, by: str = By.CSS_SELECTOR) -> None:
    """Click the element ``selector`` finds; found again if it is drawn anew meanwhile (a callback's answer)."""

    def clicked() -> bool:
        try:
            element = dash_duo.driver.find_element(by, selector)
            dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
            element.click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    _wait(dash_duo, clicked, message=f"could not click {selector}")


def test_a_monitor_works_through_the_backlog_and_an_admin_finds_it_in_the_trail(dash_duo, review_app):
    app, cut3 = review_app
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    sign_in_as(dash_duo, base, USERNAME)
    open_page(dash_duo, base, f"/listings?study={STUDY}&cut={cut3}", f"#{ids.LISTING_GRID} .ag-row")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_COUNT}", f"1,076 AE records in data cut {cut3}", timeout=20)
    # The backlog: new and changed records (the rest was reviewed in cut 2).
    click(dash_duo, "Needs review", By.PARTIAL_LINK_TEXT)
    dash_duo.wait_for_text_to_equal(f"#{ids.LISTING_COUNT}", f"364 AE records in data cut {cut3} · needs review",
                                    timeout=20)  # fmt: skip
    _wait(dash_duo, lambda: grid_row_count(dash_duo, ids.LISTING_GRID) == 364, message="grid not narrowed")
    _wait(dash_duo, lambda: set(grid_values(dash_duo, ids.LISTING_GRID, "REVIEW_STATUS")) <= {"not reviewed",
                                                                                            "outdated"})  # fmt: skip
    # Tick two records and mark them reviewed.
    boxes = f"#{ids.LISTING_GRID} .ag-pinned-left-cols-container .ag-row[row-index='{{}}'] .ag-checkbox-input"
    for row in (0, 1):
        click(dash_duo, boxes.format(row))
    click(dash_duo, f"#{ids.LISTING_REVIEW_BUTTON}")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_REVIEW_MESSAGE}", "2 of 2 selected records marked reviewed.",
                                    timeout=20)  # fmt: skip
    dash_duo.wait_for_text_to_equal(f"#{ids.LISTING_COUNT}", f"362 AE records in data cut {cut3} · needs review",
                                    timeout=20)  # fmt: skip
    _wait(dash_duo, lambda: grid_row_count(dash_duo, ids.LISTING_GRID) == 362, message="grid not refreshed")
    # Click a record: its review and comments beside the grid; comment, then raise a data query.
    subject = grid_values(dash_duo, ids.LISTING_GRID, "USUBJID")[0]
    click(dash_duo, f"#{ids.LISTING_GRID} .ag-center-cols-container .ag-row[row-index='0'] .ag-cell[col-id='PT']")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_RECORD_TITLE}", subject, timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_RECORD_DETAIL}", "Comments (0)", timeout=20)
    dash_duo.find_element(f"#{ids.LISTING_COMMENT_TEXT}").send_keys("Onset before the first dose?")
    click(dash_duo, f"#{ids.LISTING_COMMENT_BUTTON}")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_COMMENT_MESSAGE}", "added", timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_RECORD_DETAIL}", "Comments (1)", timeout=20)
    dash_duo.find_element(f"#{ids.LISTING_COMMENT_TEXT}").send_keys("Please check the grade against the CRF.")
    click(dash_duo, f"#{ids.LISTING_COMMENT_QUERY} input")
    click(dash_duo, f"#{ids.LISTING_COMMENT_BUTTON}")
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_COMMENT_MESSAGE}", "raised to the site", timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.LISTING_RECORD_DETAIL}", "query open", timeout=20)
    _wait(dash_duo, lambda: "2 · 1 open query" in grid_values(dash_duo, ids.LISTING_GRID, "COMMENTS"))
    # The query is on the Queries page.
    click(dash_duo, ".nav a[href^='/queries']")
    _wait(dash_duo, lambda: "Please check the grade against the CRF." in grid_values(dash_duo, ids.QUERIES_GRID,
                                                                                       "text"))  # fmt: skip
    assert grid_values(dash_duo, ids.QUERIES_GRID, "usubjid") == [subject]
    assert grid_values(dash_duo, ids.QUERIES_GRID, "query_status") == ["open"]
    assert dash_duo.get_logs() == []
    # An admin opens the Audit page: the monitor's actions are there, and the chain verifies.
    sign_out(dash_duo)
    assert only_refusals_after_sign_out(dash_duo.get_logs())
    sign_in_as(dash_duo, base, ADMIN)
    open_page(dash_duo, base, "/audit", f"#{ids.AUDIT_GRID} .ag-row")
    dash_duo.wait_for_contains_text(f"#{ids.AUDIT_CHAIN}", "chain verified", timeout=20)
    _wait(dash_duo, lambda: grid_values(dash_duo, ids.AUDIT_GRID, "action")[:7] == [
        "sign_in", "sign_out", "comment", "comment", "review", "review", "sign_in"])  # fmt: skip
    assert grid_values(dash_duo, ids.AUDIT_GRID, "actor")[:7] == [ADMIN] + [USERNAME] * 6
    assert dash_duo.get_logs() == []


def test_after_sign_out_back_shows_the_sign_in_page_not_the_profile(dash_duo, review_app):
    app, cut3 = review_app
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    sign_in_as(dash_duo, base, USERNAME)
    subject = "QL1706-DEMO-01-0452"
    open_page(dash_duo, base, f"/subject?study={STUDY}&cut={cut3}&subject={subject}", f"#{ids.SUBJECT_HEADER} h2")
    dash_duo.wait_for_contains_text(f"#{ids.SUBJECT_HEADER}", subject, timeout=20)
    assert dash_duo.get_logs() == []
    sign_out(dash_duo)
    dash_duo.driver.back()
    _wait(dash_duo, lambda: dash_duo.driver.find_elements(By.ID, "username"), message="no sign-in form after Back")
    assert urlparse(dash_duo.driver.current_url).path == "/login"
    assert dash_duo.find_element("h1").text == "Sign in"
    assert subject not in dash_duo.find_element("body").text  # the address keeps it in ?next=, the page does not
    assert not dash_duo.driver.find_elements(By.ID, ids.SUBJECT_HEADER)
    assert only_refusals_after_sign_out(dash_duo.get_logs())
