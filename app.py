"""Start the safety-dash web app: ``python app.py`` (development server on 127.0.0.1:8050), or in production
``gunicorn --workers 4 --bind 127.0.0.1:8050 app:server`` (see the README)."""

from __future__ import annotations

from safety_dash.config import load_settings
from safety_dash.web.app import create_app

app = create_app(load_settings(), warm_up=True)  # each worker reads the newest cuts as it starts
server = app.server

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8050)
