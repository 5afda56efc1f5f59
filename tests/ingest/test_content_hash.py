"""The content hash of a record version: stored with every version and compared with the next cut's, so its
definition must never change (a changed hash would mark every record of a database's next cut as changed)."""

from __future__ import annotations

import hashlib

import pandas as pd

from safety_dash.ingest.load import compute_content_hashes
from safety_dash.ingest.sdtm import STANDARD


def test_the_hash_is_md5_of_the_standard_columns_then_the_others_by_name_joined_by_unit_separator():
    row = {column: "" for column in STANDARD["ae"]}
    row |= {"USUBJID": "QL1706-01-0001", "AESEQ": "3", "AETERM": "Hépatite, immune", "AEDECOD": "Autoimmune hepatitis",
            "AETOXGR": "3", "AESTDTC": "2024-03-05T10:30"}  # fmt: skip
    frame = pd.DataFrame([row | {"ZZNOTE": 'said "no"', "COHORT": "B"}, row | {"ZZNOTE": "", "COHORT": "B"}])
    # by hand: the standard columns in their order, then COHORT and ZZNOTE (sorted), joined by U+001F
    text = "\x1f".join([row[c] for c in STANDARD["ae"]] + ["B", 'said "no"'])
    expected = hashlib.md5(text.encode("utf-8")).hexdigest()
    hashes = compute_content_hashes(frame, "ae")
    assert hashes[0] == expected
    assert hashes[1] != hashes[0] and len(hashes) == 2


def test_an_empty_domain_has_no_hashes():
    assert compute_content_hashes(pd.DataFrame({c: [] for c in STANDARD["dm"]}, dtype=object), "dm") == []


def test_hashes_of_many_rows_keep_their_order_across_chunks_and_awkward_text(monkeypatch):
    import safety_dash.ingest.load as load

    monkeypatch.setattr(load, "HASH_CHUNK_ROWS", 7)  # 50 rows: eight chunks
    awkward = ["", "None", "a\x1fb", "line\nbreak", "tab\tend ", "ünïcödé 肝炎", "emoji 🧪", "nul\x00byte", "'; DROP"]
    rows = []
    for i in range(50):
        row = {column: "" for column in STANDARD["dm"]}
        row |= {"USUBJID": f"S-{i:03d}", "SEX": awkward[i % len(awkward)], "ARM": str(i * 7)}
        rows.append(row | {"RACE": awkward[-1 - i % len(awkward)]})  # an extra column: after the standard ones
    frame = pd.DataFrame(rows)
    expected = [hashlib.md5("\x1f".join([row[c] for c in STANDARD["dm"]] + [row["RACE"]]).encode("utf-8")).hexdigest()
                for row in rows]  # fmt: skip
    assert compute_content_hashes(frame, "dm") == expected
