"""The frame around every page: top bar with navigation and the signed-in user, the global filter bar, the
selection chips, and the callbacks that keep them and the address bar in step.

The address bar is the single source of truth. The filter bar reads it; changing a filter writes a new address
(with the study and cut filled in, so the address is a link that reproduces the view); pages read the address.
"""

from __future__ import annotations

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from safety_dash.web import ids
from safety_dash.web.auth import has_permission
from safety_dash.web.components import build_chip
from safety_dash.web.data import NoDataYet, current_context, load_cohorts, load_cuts, load_studies, resolve_state
from safety_dash.web.figures import natural_key
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState, change_filters, parse_state, signal_group, state_href

GRADE_OPTIONS = [
    {"label": "Any", "value": 0},
    {"label": "≥ 2", "value": 2},
    {"label": "≥ 3", "value": 3},
    {"label": "≥ 4", "value": 4},
    {"label": "5", "value": 5},
]
FLAG_OPTIONS = [
    {"label": "Serious", "value": "serious"},
    {"label": "Related", "value": "related"},
    {"label": "Within window only", "value": "window"},
]
SELECTION_LABELS = {
    "soc": "SOC",
    "pt": "PT",
    "basket": "Basket",
    "subject": "Subject",
    "ref": "Reference",
    "lab": "Lab test",
}
SIGNAL_TEST_LABELS = {"rising": "rising", "cohort": "out of line"}


def _field(label: str, control, class_name: str = "") -> html.Div:
    return html.Div([html.Label(label, className="field-label"), control], className=f"field {class_name}".strip())


def build_filter_bar() -> html.Div:
    """The global filters: study, data cut, cohort, grade, serious / related / within window; and "Copy link"."""
    return html.Div(
        [
            _field("Study", dcc.Dropdown(id=ids.FILTER_STUDY, clearable=False, searchable=False), "field-study"),
            _field("Data cut", dcc.Dropdown(id=ids.FILTER_CUT, clearable=False, searchable=False), "field-cut"),
            _field("Cohort", dcc.Dropdown(id=ids.FILTER_COHORT, placeholder="All cohorts"), "field-cohort"),
            _field(
                "Grade",
                dcc.RadioItems(id=ids.FILTER_GRADE, options=GRADE_OPTIONS, value=0, inline=True, className="segmented"),
            ),
            _field(
                "Events",
                dcc.Checklist(id=ids.FILTER_FLAGS, options=FLAG_OPTIONS, value=[], inline=True, className="toggles"),
            ),
            html.Div(
                [
                    dcc.Link("Reset", id=ids.FILTER_RESET, href="/", className="ghost-button"),
                    html.Button(
                        "Committee pack",
                        id=ids.PACK_BUTTON,
                        className="ghost-button",
                        title="The safety review committee's PDF of this study, cut and filters (takes a little while)",
                    ),
                    dcc.Loading(html.Span(id=ids.PACK_STATUS, className="pack-status"), type="dot"),
                    dcc.Download(id=ids.PACK_DOWNLOAD),
                    html.Div(
                        [
                            dcc.Clipboard(id=ids.COPY_LINK, title="Copy a link to exactly this view"),
                            html.Span("Copy link"),
                        ],
                        className="copy-link",
                    ),
                ],
                className="filter-actions",
            ),
        ],
        className="filterbar",
    )


def build_shell(pages: list[Page], username: str, role: str, csrf: str) -> html.Div:
    """The page frame for the signed-in user ``username``."""
    nav = [
        dcc.Link(page.name, href=page.path, id=ids.nav_link(page.path), className="nav-link")
        for page in pages
        if page.in_navigation and (page.permission is None or has_permission(role, page.permission))
    ]
    user = html.Div(
        [
            html.Span(username, className="user-name"),
            html.Span(role, className="role-badge"),
            html.Form(
                [
                    dcc.Input(type="hidden", name="csrf_token", value=csrf, id="csrf-token"),
                    html.Button("Sign out", type="submit", className="link-button", id="sign-out"),
                ],
                method="post",
                action="/logout",
                className="sign-out",
            ),
        ],
        className="user-box",
    )
    brand = html.Div([html.Span(className="brand-mark"), "safety-dash"], className="brand")
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Store(id=ids.SHARE_HREF),
            html.Div(id=ids.TITLE_SINK, hidden=True),
            html.Header([brand, html.Nav(nav, className="nav"), user], className="topbar"),
            build_filter_bar(),
            html.Div(id=ids.FILTER_SUMMARY, className="selection-bar"),
            html.Main(id=ids.PAGE_CONTENT, className="page"),
        ],
        className="app",
    )


def build_not_found(path: str) -> html.Div:
    """The page shown for an address that is not a page."""
    return html.Div(
        [html.H1("Page not found"), html.P(f"There is no page at {path}."), dcc.Link("Go to the overview", href="/")],
        className="not-found",
    )


def _flags(state: ViewState) -> list[str]:
    return [name for name in ("serious", "related", "window") if getattr(state, name)]


def _cut_options(engine, study_id: str) -> list[dict]:
    cuts = load_cuts(engine, study_id)
    latest = int(cuts["run_id"].max()) if not cuts.empty else None
    options = []
    for row in cuts.itertuples():
        label = f"Cut {row.run_id} · {str(row.cutoff)[:10]}" + (" (latest)" if row.run_id == latest else "")
        options.append({"label": label, "value": int(row.run_id)})
    return options[::-1]


def _cohort_options(engine, run_id: int) -> list[dict]:
    return [{"label": name, "value": name} for name in sorted(load_cohorts(engine, run_id), key=natural_key)]


def _resolve_for_bar(engine, state: ViewState):
    """``state`` resolved; a link to a cut or study that is gone falls back to the newest cut (the page itself
    says what was wrong)."""
    for candidate in (state, state.replace(cut=None), ViewState()):
        try:
            return resolve_state(engine, candidate)
        except NoDataYet:
            raise
        except ValueError:
            continue
    raise NoDataYet("no data cut")


def register_shell_callbacks(app: Dash, pages: list[Page]) -> None:
    """The router, the filter bar, the committee pack button and the navigation links."""
    by_path = {page.path: page for page in pages}

    @app.callback(
        Output(ids.PACK_DOWNLOAD, "data"),
        Output(ids.PACK_STATUS, "children"),
        Input(ids.PACK_BUTTON, "n_clicks"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def download_pack(n_clicks, search):
        """The committee pack of the study, cut and filters in the address, as the ``report`` command makes it."""
        from safety_dash.report.build import make_committee_pack_download

        context = current_context()
        try:
            state, cut = resolve_state(context.engine, parse_state(search))
            data, name = make_committee_pack_download(
                context.engine, cut.study_id, cut.run_id, state.cohort, state.min_grade, state.serious,
                state.related, baskets=dict(context.baskets) or None,
            )  # fmt: skip
        except (NoDataYet, ValueError) as error:
            return no_update, f"No pack: {error}"
        return dcc.send_bytes(data, name), ""

    @app.callback(Output(ids.PAGE_CONTENT, "children"), Input(ids.URL, "pathname"))
    def route(pathname):
        page = by_path.get(pathname or "/")
        return page.layout() if page else build_not_found(pathname)

    app.clientside_callback(
        "function(path){var n={" + ",".join(f'"{p.path}":"{p.title}"' for p in pages) + "};"
        "document.title=(n[path]||'Not found')+' · safety-dash';return window.dash_clientside.no_update;}",
        Output(ids.TITLE_SINK, "children"),
        Input(ids.URL, "pathname"),
    )

    @app.callback(
        Output(ids.URL, "search"),
        Output(ids.FILTER_STUDY, "options"),
        Output(ids.FILTER_STUDY, "value"),
        Output(ids.FILTER_CUT, "options"),
        Output(ids.FILTER_CUT, "value"),
        Output(ids.FILTER_COHORT, "options"),
        Output(ids.FILTER_COHORT, "value"),
        Output(ids.FILTER_GRADE, "value"),
        Output(ids.FILTER_FLAGS, "value"),
        Input(ids.URL, "search"),
        Input(ids.FILTER_STUDY, "value"),
        Input(ids.FILTER_CUT, "value"),
        Input(ids.FILTER_COHORT, "value"),
        Input(ids.FILTER_GRADE, "value"),
        Input(ids.FILTER_FLAGS, "value"),
    )
    def sync_filters(search, study, cut, cohort, grade, flags):
        """Address -> filter bar when the address changed; filter bar -> address when a filter changed."""
        engine = current_context().engine
        state = parse_state(search)
        from_control = ctx.triggered_id not in (None, ids.URL)
        try:
            state, cut_info = _resolve_for_bar(engine, state)
        except NoDataYet:
            return no_update, [], None, [], None, [], None, 0, []
        resolved = state
        if from_control:
            flags = set(flags or [])
            new_study = ctx.triggered_id == ids.FILTER_STUDY
            changed = change_filters(
                state,
                study=study,
                cut=None if new_study else cut,
                cohort=None if new_study else (cohort or None),
                min_grade=grade or None,
                serious="serious" in flags,
                related="related" in flags,
                window="window" in flags,
            )
            resolved, cut_info = _resolve_for_bar(engine, changed)
        studies = [{"label": s, "value": s} for s in load_studies(engine)]
        cohorts = _cohort_options(engine, cut_info.run_id)
        if resolved.cohort and resolved.cohort not in {c["value"] for c in cohorts}:
            cohorts.append({"label": f"{resolved.cohort} (not in this cut)", "value": resolved.cohort})
        new_search = state_href("", resolved) if from_control else no_update
        return (
            new_search,
            studies,
            resolved.study,
            _cut_options(engine, resolved.study),
            resolved.cut,
            cohorts,
            resolved.cohort,
            resolved.min_grade or 0,
            _flags(resolved),
        )

    @app.callback(
        Output({"type": ids.NAV_LINK, "page": ALL}, "href"),
        Output({"type": ids.NAV_LINK, "page": ALL}, "className"),
        Output(ids.SHARE_HREF, "data"),
        Output(ids.FILTER_SUMMARY, "children"),
        Output(ids.FILTER_RESET, "href"),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
    )
    def update_links(pathname, search):
        """Navigation keeps the view state; the share link pins the study and cut; selections become chips."""
        state = parse_state(search)
        paths = [output["id"]["page"] for output in ctx.outputs_list[0]]  # the links this user's shell holds
        hrefs = [state_href(path, state) for path in paths]
        classes = ["nav-link active" if path == pathname else "nav-link" for path in paths]
        try:
            pinned, _ = resolve_state(current_context().engine, state)
        except ValueError:
            pinned = state
        chips = []
        for field, label in SELECTION_LABELS.items():
            value = getattr(state, field)
            if value:
                chips.append(
                    build_chip(f"{label}: {value}", state_href(pathname or "/", state.replace(**{field: None})))
                )
        if state.test:  # the selected signal's test and group are one chip
            signal = f"Signal: {SIGNAL_TEST_LABELS[state.test]} · {signal_group(state)}"
            chips.append(build_chip(signal, state_href(pathname or "/", state.replace(test=None, group=None))))
        summary = [html.Span("Selected", className="selection-label"), *chips] if chips else []
        reset = state_href(pathname or "/", ViewState(study=pinned.study, cut=pinned.cut))
        return hrefs, classes, state_href(pathname or "/", pinned), summary, reset

    app.clientside_callback(
        "function(href){return href ? window.location.origin + href : window.location.href;}",
        Output(ids.COPY_LINK, "content"),
        Input(ids.SHARE_HREF, "data"),
    )
