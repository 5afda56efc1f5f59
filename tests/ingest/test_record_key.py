"""The AE record key: SDTM's (USUBJID, AESEQ) by default, sponsor columns when a source renumbers AESEQ."""

from __future__ import annotations

import datetime as dt

import pytest

from safety_dash.db.studies import configure_study
from safety_dash.ingest.pipeline import ingest_extract
from tests.ingest.builders import standard_extract, write_extract

CUTOFF = dt.date(2021, 6, 30)


def renumbered(extract: dict) -> dict:
    """The same events, with AESEQ renumbered in reverse within each subject (as some EDC exports do)."""
    for row in extract["ae"]:
        row["AESEQ"] = str(10 - int(row["AESEQ"]))
    return extract


def test_default_key_sees_renumbered_aeseq_as_removed_and_new(database_url, tmp_path):
    # the run removes or quarantines far above the default 10 % guard, accepted on purpose
    ingest_extract(
        database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF, accept_large_change=True
    )
    cut2 = ingest_extract(
        database_url,
        write_extract(tmp_path / "cut2", renumbered(standard_extract())),
        cutoff=CUTOFF,
        accept_large_change=True,
    )
    assert (cut2.domains["ae"]["new"], cut2.domains["ae"]["removed"]) == (4, 4)


def test_sponsor_key_follows_events_across_renumbering(database_url, tmp_path):
    configure_study(database_url, "T1", ae_key_columns="usubjid, aespid, aeterm, aestdtc")
    ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    cut2 = ingest_extract(database_url, write_extract(tmp_path / "cut2", renumbered(standard_extract())), cutoff=CUTOFF)
    # AESEQ is a stored value, so the events are "changed", not new: same records, new sequence numbers.
    assert cut2.domains["ae"] == {"read": 4, "loaded": 4, "quarantined": 0, "new": 0, "changed": 4,
                                  "unchanged": 0, "removed": 0}  # fmt: skip


def test_configure_study_refuses_a_key_change_after_the_first_load(database_url, tmp_path):
    ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    with pytest.raises(ValueError, match="study T1 already has 4 AE records; ae_key_columns cannot change"):
        configure_study(database_url, "T1", ae_key_columns="USUBJID,AESPID")


def test_configure_study_refuses_a_key_without_usubjid(database_url):
    with pytest.raises(ValueError, match="must name USUBJID and at least one more column"):
        configure_study(database_url, "T1", ae_key_columns="AESPID")


def test_aespid_alone_is_not_unique_in_the_cdisc_pilot(database_url, cdisc_pilot):
    # the run removes or quarantines far above the default 10 % guard, accepted on purpose
    configure_study(database_url, "CDISCPILOT01", ae_key_columns="USUBJID,AESPID")
    result = ingest_extract(database_url, cdisc_pilot / "sdtm", accept_large_change=True)
    # The pilot repeats AESPID within subjects 308 times: each repeat is a duplicate key, quarantined, not lost.
    assert result.domains["ae"]["quarantined"] == 308
    assert result.domains["ae"]["loaded"] == 1191 - 308
