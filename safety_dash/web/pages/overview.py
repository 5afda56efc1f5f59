"""Overview: the cut at a glance — exposure, subjects with events by seriousness, alerts, the review backlog, the
state of the last ingestion, and what is new or changed since the previous cut."""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html

from safety_dash.views.review import compute_subject_backlog, count_open_queries
from safety_dash.web import ids
from safety_dash.web.components import (
    build_alert,
    build_card,
    build_graph,
    build_page_header,
    build_panel,
    build_small_table,
    guard,
)
from safety_dash.web.data import (
    ANY_IMMUNE_BASKET,
    GROUP_COLUMN,
    load_latest_run,
    load_open_alert_count,
    previous_cut,
)
from safety_dash.web.figures import make_cohort_incidence_figure
from safety_dash.web.listing import listing_backlog, load_listing_review, review_href
from safety_dash.web.pages import Page
from safety_dash.web.pages.signals import signal_href, top_signals
from safety_dash.web.state import ViewState, state_href
from safety_dash.web.views import Overview, format_pct, load_overview, load_view


def layout():
    """The overview page."""
    return html.Div(
        [
            build_page_header("Overview", "The data cut at a glance: exposure, adverse events and what changed."),
            html.P(id=ids.OVERVIEW_SCOPE, className="scope-line"),
            html.Div(id=ids.OVERVIEW_ALERT),
            html.Div(id=ids.OVERVIEW_CARDS, className="cards"),
            html.Div(
                [
                    build_panel(
                        "Subjects with events by cohort",
                        [build_graph(ids.OVERVIEW_COHORT_GRAPH, 420)],
                        subtitle="% of dosed subjects with at least one qualifying treatment-emergent event",
                        class_name="span-2",
                    ),
                    html.Div(
                        [
                            html.Div(id=ids.OVERVIEW_SIGNALS),
                            html.Div(id=ids.OVERVIEW_REVIEW),
                            html.Div(id=ids.OVERVIEW_CUT),
                            html.Div(id=ids.OVERVIEW_CHANGES),
                        ],
                        className="stack",
                    ),
                ],
                className="grid-3",
            ),
        ]
    )


def _filter_note(state: ViewState) -> str:
    parts = []
    if state.min_grade:
        parts.append(f"grade ≥ {state.min_grade}" if state.min_grade < 5 else "grade 5")
    if state.serious:
        parts.append("serious")
    if state.related:
        parts.append("related")
    return "qualifying events: " + ", ".join(parts) if parts else "treatment-emergent, within the risk window"


def build_cards(overview: Overview, state: ViewState, alerts: tuple[int, str]) -> list:
    """The eight figures of the overview, each linking to the page that explains it."""
    n, counts = overview.n_dosed, overview.counts

    def link(path: str, **changes) -> str:
        return state_href(path, state.replace(**changes))

    def share(name: str) -> str:
        return f"{format_pct(counts[name], n)} of dosed"

    muted = "tone-muted" if alerts[1].startswith("alerts not") else ""
    return [
        build_card("Subjects dosed", f"{n:,}", f"of {overview.n_enrolled:,} enrolled", href=link("/data")),
        build_card("Patient-years at risk", f"{overview.patient_years:,.1f}", "to the end of the risk window"),
        build_card("With a TEAE", f"{counts['teae']:,}", share("teae"), href=link("/explorer")),
        build_card("Grade ≥ 3", f"{counts['grade3']:,}", share("grade3"), "tone-warn",
                   href=link("/listings", min_grade=max(state.min_grade or 0, 3))),
        build_card("Serious", f"{counts['serious']:,}", share("serious"), "tone-warn",
                   href=link("/listings", serious=True)),
        build_card("Fatal (grade 5)", f"{counts['fatal']:,}", share("fatal"), "tone-danger",
                   href=link("/listings", min_grade=5)),
        build_card("Immune-related", f"{counts['immune']:,}", f"{format_pct(counts['immune'], n)} · irAE baskets",
                   href=link("/rates", basket=ANY_IMMUNE_BASKET, pt=None)),
        build_card("Open alerts", f"{alerts[0]:,}", alerts[1], muted, href=None if muted else link("/alerts")),
    ]  # fmt: skip


def _stat(label: str, value) -> html.Div:
    return html.Div(
        [html.Span(label), html.Strong(f"{value:,}" if isinstance(value, int) else value)], className="stat"
    )


def build_cut_panel(view, latest_run: dict | None) -> html.Section:
    """The cut shown and the state of the newest ingestion of the study."""
    cut = view.cut
    rows = [
        _stat("Study", cut.study_id),
        _stat("Data cut", f"{cut.run_id} · cutoff {cut.cutoff:%Y-%m-%d}"),
        _stat("Derived", (cut.derived_at or "")[:16] + " UTC"),
        _stat("CTCAE", f"v{cut.ctcae_version} · window {cut.window_days} days after last dose"),
    ]
    children = [html.Div(rows, className="stats")]
    if latest_run:
        status = str(latest_run["status"])
        tone = {"succeeded": "ok", "failed": "danger", "running": "info"}.get(status, "info")
        children.append(
            html.Div(
                [
                    html.Span("Last ingestion", className="stat-caption"),
                    html.Span(f"run {latest_run['run_id']} {status}", className=f"badge badge-{tone}"),
                    html.P(str(latest_run.get("message") or ""), className="muted small"),
                    dcc.Link("Ingestion runs and quarantine →", href=state_href("/data", view.state), className="more"),
                ],
                className="last-run",
            )
        )
    return build_panel("Data cut", children)


def build_changes_panel(view, overview: Overview, previous) -> html.Section:
    """What the cut brought: new subjects, deaths, new and changed records, and the new severe events."""
    changes = overview.changes
    removed = sum(int(domain.get("removed", 0)) for domain in view.cut.counts.values())
    quarantined = sum(int(domain.get("quarantined", 0)) for domain in view.cut.counts.values())
    if previous is None:
        title, rows = "First data cut", [_stat("AE records", changes["new_records"])]
    else:
        title = f"Since cut {previous.run_id} ({previous.cutoff:%Y-%m-%d})"
        rows = [
            _stat("Newly dosed subjects", changes.get("newly_dosed", 0)),
            _stat("Deaths", changes.get("new_deaths", 0)),
            _stat("New AE records", changes["new_records"]),
            _stat("Changed AE records", changes["changed_records"]),
            _stat("New treatment-emergent AEs", changes["new_teae"]),
            _stat("Records removed", removed),
            _stat("Rows quarantined", quarantined),
        ]
    table = overview.new_events.assign(
        GRADE=overview.new_events["GRADE"].astype("string").fillna("?"),
        ASTDT=overview.new_events["ASTDT"].dt.strftime("%Y-%m-%d"),
        SERIOUS=overview.new_events["SERIOUS"].map({True: "Y", False: ""}),
    )
    children = [html.Div(rows, className="stats")]
    if not table.empty:
        children += [
            html.H3(f"New or changed grade ≥ 3 or serious ({changes['new_or_changed_severe']})", className="minor"),
            build_small_table(
                table,
                {"USUBJID": "Subject", "PT": "Preferred term", "GRADE": "Gr", "SERIOUS": "SAE", "ASTDT": "Onset"},
                links={"USUBJID": lambda row: state_href("/subject", view.state.replace(subject=row["USUBJID"]))},
            ),
        ]  # fmt: skip
    return build_panel(title, children)


def build_review_panel(view) -> html.Section:
    """The review backlog of the cut: AE records the listing shows (same filters) that need review, never reviewed
    or changed since their review; subjects whose record needs review; the data queries waiting for the site."""
    state = view.state
    backlog = listing_backlog(view.key, state)
    review = load_listing_review(view.key)
    frame = view.key.frames.subjects
    subjects = frame.loc[frame[GROUP_COLUMN] == state.cohort, "USUBJID"] if state.cohort else frame["USUBJID"]
    subject_backlog = compute_subject_backlog(review, subjects)
    queries = count_open_queries(review, subjects)
    needs = dcc.Link(f"{backlog['needs review']:,}", href=review_href("/listings", state, "needs"),
                     className="table-link")  # fmt: skip
    rows = [
        _stat("AE records needing review", needs),
        _stat("of which never reviewed", backlog["not reviewed"]),
        _stat("of which changed since their review", backlog["outdated"]),
        _stat("AE records reviewed", backlog["reviewed"]),
        _stat("Subjects needing review", subject_backlog["needs review"]),
        _stat("Open data queries", dcc.Link(f"{queries['open']:,}", href=state_href("/queries", state),
                                            className="table-link")),
        _stat("Answered, to close", queries["answered"]),
    ]  # fmt: skip
    scope = f"cohort {state.cohort}" if state.cohort else "all cohorts"
    return build_panel("Review backlog", [html.Div(rows, className="stats")],
                       subtitle=f"data cut {view.cut.run_id} · {scope} · the listing's filters")  # fmt: skip


def build_signals_card(view) -> html.Div:
    """The Signals card: how many signal rows are flagged and the first three, each a link that opens it on the
    Signals page (its numbers, since when, and its subjects)."""
    n_flagged, n_rows, top = top_signals(view)
    state = view.state
    items = []
    for signal, row in top:
        items.append(
            html.Li(
                [
                    dcc.Link(signal.label, href=signal_href(state, signal), className="table-link"),
                    html.Span(f"RR {row['rr_text']} · since {row['since']}", className="muted small"),
                ]
            )
        )
    if n_flagged > len(top):
        items.append(html.Li(f"and {n_flagged - len(top)} more", className="muted small"))
    detail = f"of {n_rows} rows · " + ("the first three:" if n_flagged > 3 else "flagged:" if n_flagged else "none")
    head = html.Div(
        [html.Span("Signals", className="card-label"),
         dcc.Link("All signals →", href=state_href("/signals", state.replace(test=None, group=None)),
                  className="more")],
        className="signals-card-head",
    )  # fmt: skip
    return html.Div(
        [
            head,
            html.Div([html.Span(f"{n_flagged}", className="card-value"), html.Span(" flagged", className="muted")]),
            html.Div(detail, className="card-detail"),
            html.Ul(items, className="signal-list") if items else None,
        ],
        className=f"card signals-card {'tone-danger' if n_flagged else 'tone-muted'}",
    )


def register_callbacks(app: Dash) -> None:
    """The overview's callbacks: the address in, every panel out; the Signals card on its own (it may compute)."""

    @app.callback(Output(ids.OVERVIEW_SIGNALS, "children"), Input(ids.URL, "search"))
    @guard(1)
    def update_signals_card(search):
        return build_signals_card(load_view(search))

    @app.callback(Output(ids.OVERVIEW_REVIEW, "children"), Input(ids.URL, "search"))
    @guard(1)
    def update_review_panel(search):
        return build_review_panel(load_view(search))

    @app.callback(
        Output(ids.OVERVIEW_ALERT, "children"),
        Output(ids.OVERVIEW_CARDS, "children"),
        Output(ids.OVERVIEW_CUT, "children"),
        Output(ids.OVERVIEW_CHANGES, "children"),
        Output(ids.OVERVIEW_COHORT_GRAPH, "figure"),
        Output(ids.OVERVIEW_SCOPE, "children"),
        Input(ids.URL, "search"),
    )
    @guard(6)
    def update_overview(search):
        view = load_view(search)
        state, engine = view.state, view.context.engine
        previous = previous_cut(engine, view.cut)
        overview = load_overview(
            view.key, state.cohort, state.min_grade, state.serious, state.related, previous.cutoff if previous else None
        )
        alert = None
        if state.cohort and overview.n_dosed == 0:
            alert = build_alert(f"No dosed subject in cohort {state.cohort} in this cut.", "warning")
        return (
            alert,
            build_cards(overview, state, load_open_alert_count(engine, view.cut.study_id)),
            build_cut_panel(view, load_latest_run(engine, view.cut.study_id)),
            build_changes_panel(view, overview, previous),
            make_cohort_incidence_figure(overview.by_cohort),
            f"{state.cohort or 'All cohorts'} · counting {_filter_note(state)}",
        )


PAGE = Page(path="/", name="Overview", title="Overview", layout=layout, register_callbacks=register_callbacks)
