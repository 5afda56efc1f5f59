"""The filter bar's "Committee pack" button: the PDF of the address's study, cut and filters, as `report` makes it."""

from __future__ import annotations

import base64
import subprocess

from safety_dash.web import ids
from safety_dash.web.dashcall import call_callback
from tests.web.conftest import sign_in_client


def _press(app, search: str):
    client = app.server.test_client()
    assert sign_in_client(client).status_code == 302
    return call_callback(
        client, app, f"{ids.PACK_DOWNLOAD}.data", {f"{ids.PACK_BUTTON}.n_clicks": 1}, {f"{ids.URL}.search": search}
    )


def test_the_pack_button_downloads_the_pdf_of_the_view(web_app, demo_db, tmp_path):
    search = f"?study={demo_db.study_id}&cut={demo_db.run_ids[-1]}&cohort=Ph%20Ib%20NPC"
    answer = _press(web_app, search)
    assert answer.status == 200
    download = answer.outputs[ids.PACK_DOWNLOAD]["data"]
    assert (
        download["filename"] == f"committee-pack_{demo_db.study_id}_cut{demo_db.run_ids[-1]}_2023-03-31_Ph-Ib-NPC.pdf"
    )
    pdf = base64.b64decode(download["content"])
    assert pdf.startswith(b"%PDF")
    (tmp_path / "pack.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "pack.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Committee pack" in text and "Ph Ib NPC" in text


def test_the_pack_button_says_why_when_the_cut_is_gone(web_app, demo_db):
    answer = _press(web_app, f"?study={demo_db.study_id}&cut=999999")
    assert answer.status == 200
    assert "No pack: " in answer.outputs[ids.PACK_STATUS]["children"]
    assert ids.PACK_DOWNLOAD not in answer.outputs
