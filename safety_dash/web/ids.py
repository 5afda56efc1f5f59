"""Every component id of the web app, in one place.

Ids are constants (or pattern-matching dicts built by the functions below), never put together by string
concatenation in callbacks, so a renamed id breaks at import and not in the browser.
"""

from __future__ import annotations

# The shell: address bar, navigation, filter bar, page container.
URL = "url"
PAGE_CONTENT = "page-content"
NAV_LINK = "nav-link"  # pattern-matching type: {"type": NAV_LINK, "page": <page path>}
COPY_LINK = "copy-link"
SHARE_HREF = "share-href"
TITLE_SINK = "title-sink"

FILTER_STUDY = "filter-study"
FILTER_CUT = "filter-cut"
FILTER_COHORT = "filter-cohort"
FILTER_GRADE = "filter-grade"
FILTER_FLAGS = "filter-flags"
FILTER_RESET = "filter-reset"
FILTER_SUMMARY = "filter-summary"

# Overview.
OVERVIEW_ALERT = "overview-alert"
OVERVIEW_CARDS = "overview-cards"
OVERVIEW_SCOPE = "overview-scope"
OVERVIEW_CUT = "overview-cut"
OVERVIEW_CHANGES = "overview-changes"
OVERVIEW_COHORT_GRAPH = "overview-cohort-graph"
OVERVIEW_NEW_EVENTS = "overview-new-events"
OVERVIEW_SIGNALS = "overview-signals"

# AE explorer.
EXPLORER_ALERT = "explorer-alert"
EXPLORER_SOC_GRAPH = "explorer-soc-graph"
EXPLORER_PT_GRAPH = "explorer-pt-graph"
EXPLORER_PT_TITLE = "explorer-pt-title"
EXPLORER_GRID = "explorer-grid"
EXPLORER_GRID_TITLE = "explorer-grid-title"
EXPLORER_CLEAR_SOC = "explorer-clear-soc"
EXPLORER_TERM_PANEL = "explorer-term-panel"
EXPLORER_TERM_LISTING = "explorer-term-listing"
EXPLORER_TERM_ONSET = "explorer-term-onset"
EXPLORER_ONSET_LINK = "explorer-onset-link"
EXPLORER_LISTING_LINK = "explorer-listing-link"

# Signals.
SIGNALS_ALERT = "signals-alert"
SIGNALS_SCOPE = "signals-scope"
SIGNALS_GRID = "signals-grid"
SIGNALS_COUNT = "signals-count"
SIGNALS_FOREST = "signals-forest"
SIGNALS_DETAIL_TITLE = "signals-detail-title"
SIGNALS_DETAIL = "signals-detail"
SIGNALS_TREND = "signals-trend"
SIGNALS_LISTING_PANEL = "signals-listing-panel"
SIGNALS_LISTING_TITLE = "signals-listing-title"
SIGNALS_LISTING = "signals-listing"

# Exposure-adjusted rates.
RATES_ALERT = "rates-alert"
RATES_TERM = "rates-term"
RATES_REFERENCE = "rates-reference"
RATES_FOREST = "rates-forest"
RATES_DIFFERENCE = "rates-difference"
RATES_TREND = "rates-trend"
RATES_NUMBERS = "rates-numbers"
RATES_TITLE = "rates-title"

# Time to onset.
ONSET_ALERT = "onset-alert"
ONSET_TERM = "onset-term"
ONSET_CURVES = "onset-curves"
ONSET_DISTRIBUTION = "onset-distribution"
ONSET_SUMMARY = "onset-summary"
ONSET_TITLE = "onset-title"

# Subject profile.
SUBJECT_ALERT = "subject-alert"
SUBJECT_PICKER = "subject-picker"
SUBJECT_HEADER = "subject-header"
SUBJECT_TIMELINE = "subject-timeline"
SUBJECT_EVENTS = "subject-events"
SUBJECT_DETAIL = "subject-detail"

# Listings.
LISTING_ALERT = "listing-alert"
LISTING_GRID = "listing-grid"
LISTING_COUNT = "listing-count"
LISTING_EXPORT = "listing-export"
LISTING_DOWNLOAD = "listing-download"
LISTING_SCOPE = "listing-scope"
LISTING_REFRESH = "listing-refresh"

# Data.
DATA_ALERT = "data-alert"
DATA_RUNS = "data-runs"
DATA_QUARANTINE = "data-quarantine"
DATA_QUARANTINE_TITLE = "data-quarantine-title"
DATA_REFRESH = "data-refresh"
DATA_SELECTED_RUN = "data-selected-run"


def nav_link(page_path: str) -> dict[str, str]:
    """The id of the navigation link to the page at ``page_path``."""
    return {"type": NAV_LINK, "page": page_path}


# Alerts.
ALERTS_ALERT = "alerts-alert"
ALERTS_STATUS = "alerts-status"
ALERTS_GRID = "alerts-grid"
ALERTS_COUNT = "alerts-count"
ALERTS_SELECTED = "alerts-selected"
ALERTS_REFRESH = "alerts-refresh"
ALERTS_DETAIL_TITLE = "alerts-detail-title"
ALERTS_DETAIL = "alerts-detail"
ALERTS_ACK_FORM = "alerts-ack-form"
ALERTS_ACK_NOTE = "alerts-ack-note"
ALERTS_COMMENT = "alerts-comment"
ALERTS_ACK_BUTTON = "alerts-ack-button"
ALERTS_ACK_MESSAGE = "alerts-ack-message"

# Review, comments, data queries and the audit trail (issue 11).

# Laboratory pages and the subject's lab panel (issue 13).
