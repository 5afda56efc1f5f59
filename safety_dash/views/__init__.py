"""The numbers of each page, below the web layer: plain functions returning frames, usable without Dash.

``signals`` holds the Signals page's numbers; ``ordering`` the order in which cohorts (dose levels) are shown.
Nothing here imports :mod:`safety_dash.web`.
"""
