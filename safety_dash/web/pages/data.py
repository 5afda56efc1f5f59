"""Data: the ingestion runs of the study (each succeeded run is a data cut) and the rows a run put in quarantine,
with the reason each was refused."""

from __future__ import annotations

import json

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from safety_dash.web import ids
from safety_dash.web.components import (
    EMPTY_ROWS,
    build_client_grid,
    build_grid,
    build_page_header,
    build_panel,
    guard,
    guard_rows,
    number_column,
)
from safety_dash.web.data import GROUP_COLUMN, load_quarantine_of_cohort, load_quarantine_page, load_runs
from safety_dash.web.listing import json_records, page_bounds
from safety_dash.web.pages import Page
from safety_dash.web.views import load_view

RUNS_SHOWN = 50
RUN_COLUMNS = [
    {"field": "run_id", "headerName": "Run", "maxWidth": 80, "cellClass": "cell-link"},
    {"field": "status", "headerName": "Status", "maxWidth": 115,
     "cellClassRules": {"cell-ok": "params.value == 'succeeded'", "cell-bad": "params.value == 'failed'"}},
    {"field": "cutoff", "headerName": "Cutoff", "maxWidth": 120},
    {"field": "started_at", "headerName": "Started (UTC)", "minWidth": 150},
    {"field": "trigger", "headerName": "Trigger", "maxWidth": 100},
    {"field": "dm", "headerName": "DM", "minWidth": 150, "tooltipField": "dm"},
    {"field": "ex", "headerName": "EX", "minWidth": 150, "tooltipField": "ex"},
    {"field": "ae", "headerName": "AE", "minWidth": 150, "tooltipField": "ae"},
    number_column("n_quarantined", "Quarantined", 0, maxWidth=130,
                  cellClassRules={"cell-bad": "params.value > 0"}),
    {"field": "encoding", "headerName": "Encoding", "maxWidth": 160, "tooltipField": "files"},
    {"field": "message", "headerName": "Message", "minWidth": 360, "tooltipField": "message"},
    {"field": "source", "headerName": "Source", "minWidth": 200, "tooltipField": "source"},
]  # fmt: skip
QUARANTINE_COLUMNS = [
    {"field": "domain", "headerName": "Domain", "maxWidth": 100},
    {"field": "file", "headerName": "File", "maxWidth": 140},
    number_column("row_number", "Row", 0, maxWidth=90),
    {"field": "column", "headerName": "Column", "maxWidth": 130},
    {"field": "value", "headerName": "Value", "maxWidth": 180},
    {"field": "reason", "headerName": "Reason", "minWidth": 360, "tooltipField": "reason", "cellClass": "cell-bad"},
    {"field": "raw", "headerName": "Row as read", "minWidth": 420, "tooltipField": "raw"},
]


def layout():
    """The data page."""
    return html.Div(
        [
            build_page_header(
                "Data",
                "Ingestion runs of the study and the rows they refused. Click a run to see its quarantined rows.",
            ),
            html.Div(id=ids.DATA_ALERT),
            dcc.Store(id=ids.DATA_SELECTED_RUN),
            build_panel(
                "Ingestion runs",
                [build_client_grid(ids.DATA_RUNS, RUN_COLUMNS)],
                subtitle="newest first · counts per domain for the whole study: loaded of read, then new / changed / "
                "removed records",
            ),
            build_panel(
                html.Span(id=ids.DATA_QUARANTINE_TITLE),
                [
                    build_grid(
                        ids.DATA_QUARANTINE,
                        QUARANTINE_COLUMNS,
                        height=420,
                        page_size=25,
                        defaultColDef={"resizable": True, "sortable": False, "filter": False},
                    )
                ],
                subtitle="rows that could not be placed or read; everything else loads with a visible data-query flag",
            ),  # fmt: skip
        ]
    )


def _domain_text(counts: dict, domain: str) -> str:
    c = counts.get(domain)
    if not c:
        return ""
    return f"{c.get('loaded', 0)}/{c.get('read', 0)} · +{c.get('new', 0)} ~{c.get('changed', 0)} −{c.get('removed', 0)}"


def _files_text(files) -> tuple[str, str]:
    """The text encodings a run read its files in, and one line per file (name, rows, encoding, SHA-256)."""
    files = _as_json(files) or []
    encodings = ", ".join(sorted({f["encoding"] for f in files}))
    detail = "; ".join(f"{f['domain']}: {f['path']} ({f['rows']} rows, {f['encoding']}, sha256 {f['sha256']})"
                       for f in files)  # fmt: skip
    return encodings, detail


def _as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def runs_rows(runs: pd.DataFrame) -> list[dict]:
    """The runs grid's rows."""
    frame = runs.head(RUNS_SHOWN).copy()
    for domain in ("dm", "ex", "ae"):
        frame[domain] = [_domain_text(_as_json(c) or {}, domain) for c in frame["counts"]]
    described = [_files_text(f) for f in frame["files"]]
    frame["encoding"] = [e for e, _ in described]
    frame["files"] = [d for _, d in described]
    frame["started_at"] = frame["started_at"].astype(str).str[:16]
    frame["cutoff"] = frame["cutoff"].astype(str).str[:10].replace({"None": ""})
    return json_records(frame.drop(columns=["counts", "worker", "finished_at", "study_id"]))


def subject_cohorts(view) -> dict[str, str]:
    """USUBJID -> cohort of the subjects of the cut shown."""
    subjects = view.key.frames.subjects
    return dict(zip(subjects["USUBJID"], subjects[GROUP_COLUMN], strict=True))


def quarantine_title(view, run_id: int) -> str:
    """The quarantine panel's title: the run, and with a cohort filter how many rows it keeps and why."""
    cohort = view.state.cohort
    if not cohort:
        return f"Quarantined rows of run {run_id}"
    _, kept, hidden = load_quarantine_of_cohort(view.context.engine, run_id, 0, 0, cohort, subject_cohorts(view))
    return (
        f"Quarantined rows of run {run_id} that may concern cohort {cohort}: {kept} "
        f"({hidden} of other cohorts' subjects not shown; rows naming no known subject are always shown)"
    )


def register_callbacks(app: Dash) -> None:
    """Runs from the address; a clicked run's quarantined rows, one page at a time."""

    @app.callback(
        Output(ids.DATA_ALERT, "children"),
        Output(ids.DATA_RUNS, "rowData"),
        Output(ids.DATA_SELECTED_RUN, "data"),
        Input(ids.URL, "search"),
    )
    @guard(3)
    def update_runs(search):
        view = load_view(search)
        runs = load_runs(view.context.engine, view.cut.study_id, limit=RUNS_SHOWN)
        with_rows = runs.loc[runs["n_quarantined"] > 0, "run_id"]
        selected = int(with_rows.iloc[0]) if not with_rows.empty else view.cut.run_id
        return None, runs_rows(runs), selected

    @app.callback(
        Output(ids.DATA_SELECTED_RUN, "data", allow_duplicate=True),
        Input(ids.DATA_RUNS, "cellClicked"),
        State(ids.DATA_RUNS, "rowData"),
        prevent_initial_call=True,
    )
    def select_run(cell, rows):
        """Clicking a run shows its quarantined rows."""
        if not cell or cell.get("rowIndex") is None or not rows:
            raise PreventUpdate
        index = int(cell["rowIndex"])
        if not 0 <= index < len(rows):
            raise PreventUpdate
        return int(rows[index]["run_id"])

    @app.callback(
        Output(ids.DATA_QUARANTINE_TITLE, "children"),
        Input(ids.DATA_SELECTED_RUN, "data"),
        Input(ids.URL, "search"),
    )
    def title(run_id, search):
        """The quarantine panel's title: the run and, with a cohort filter, what it left out."""
        if not run_id:
            return "Quarantined rows"
        try:
            view = load_view(search)
        except ValueError:
            return f"Quarantined rows of run {run_id}"
        return quarantine_title(view, int(run_id))

    @app.callback(
        Output(ids.DATA_QUARANTINE, "getRowsResponse"),
        Input(ids.DATA_QUARANTINE, "getRowsRequest"),
        State(ids.DATA_SELECTED_RUN, "data"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_quarantine(request, run_id, search):
        """One page of the selected run's quarantined rows."""
        if request is None:
            raise PreventUpdate
        if run_id is None:  # answered all the same: an unanswered request stalls the grid
            return dict(EMPTY_ROWS)
        view = load_view(search)
        start, end = page_bounds(request)
        if view.state.cohort:
            rows, total, _ = load_quarantine_of_cohort(
                view.context.engine, int(run_id), start, end - start, view.state.cohort, subject_cohorts(view)
            )
        else:
            rows, total = load_quarantine_page(view.context.engine, int(run_id), start, end - start)
        return {"rowData": json_records(rows.drop(columns=["id", "run_id"])), "rowCount": total}

    app.clientside_callback(
        """function(runId, gridId) {
            if (window.dash_ag_grid && window.dash_ag_grid.getApiAsync) {
                window.dash_ag_grid.getApiAsync(gridId).then(function(api) { api.purgeInfiniteCache(); });
            }
            return window.dash_clientside.no_update;
        }""",
        Output(ids.DATA_QUARANTINE, "className"),
        Input(ids.DATA_SELECTED_RUN, "data"),
        State(ids.DATA_QUARANTINE, "id"),
        prevent_initial_call=True,
    )


PAGE = Page(path="/data", name="Data", title="Data", layout=layout, register_callbacks=register_callbacks)
