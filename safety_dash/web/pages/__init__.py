"""The pages of the dashboard, one module each: its address, its layout and its callbacks.

Each page module defines ``PAGE = Page(...)``. :data:`PAGE_MODULES` lists them in navigation order; a new page
(e.g. alerts) adds its module there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from dash import Dash
from dash.development.base_component import Component

PAGE_MODULES = (
    "safety_dash.web.pages.overview",
    "safety_dash.web.pages.signals",
    "safety_dash.web.pages.explorer",
    "safety_dash.web.pages.rates",
    "safety_dash.web.pages.onset",
    "safety_dash.web.pages.labs",
    "safety_dash.web.pages.edish",
    "safety_dash.web.pages.subject",
    "safety_dash.web.pages.listings",
    "safety_dash.web.pages.queries",
    "safety_dash.web.pages.data",
    "safety_dash.web.pages.alerts",
    "safety_dash.web.pages.audit",
)


@dataclass(frozen=True)
class Page:
    """A page: where it lives, how the navigation names it, what it shows and the callbacks it brings."""

    path: str
    name: str
    title: str
    layout: Callable[[], Component]
    register_callbacks: Callable[[Dash], None]
    in_navigation: bool = True
    permission: str | None = None  # a permission of safety_dash.web.auth.PERMISSIONS: only its roles see the link


def load_pages() -> list[Page]:
    """Every page, in navigation order."""
    return [importlib.import_module(name).PAGE for name in PAGE_MODULES]
