"""The committee pack read back from its PDF: the cells show the numbers of ``rates``, ``signals`` and the dashboard's
overview, numbers worked by hand from the records, and the CDISC pilot's published figures.

Cells are expected as the pack writes them: "n (x.x%)" ("0" for none) with the exact interval "[lo, hi]" below,
which the PDF's text gives as "n (x.x%) [lo, hi]"; columns are the cohorts in natural order, then All cohorts.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from safety_dash.analysis import compute_cut_rates, load_baskets, load_derived_frames, resolve_cut
from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.report import PackFilters, make_committee_pack, make_committee_pack_download
from safety_dash.report.inputs import load_pack_inputs
from safety_dash.report.tables import list_changed_events
from safety_dash.signal_store import compute_cut_signals
from tests.report.conftest import flatten

DEMO_GROUPS = [
    "Ph I 0.3 mg/kg",
    "Ph I 1 mg/kg",
    "Ph I 3 mg/kg",
    "Ph I 5 mg/kg",
    "Ph I 10 mg/kg",
    "Ph Ib Cervical",
    "Ph Ib NPC",
    "Ph Ib NSCLC",
    "Ph Ib Other",
    "ALL",
]
PILOT_GROUPS = ["Placebo", "Xanomeline High Dose", "Xanomeline Low Dose", "ALL"]


def n_pct(n: int, total: int) -> str:
    return "0" if n == 0 else f"{n} ({100 * n / total:.1f}%)"


def clopper_pearson(n: int, total: int) -> str:
    """The exact 95% interval in %, computed here from the beta quantiles (not by the package)."""
    low = 0.0 if n == 0 else stats.beta.ppf(0.025, n, total - n + 1)
    high = 1.0 if n == total else stats.beta.ppf(0.975, n + 1, total - n)
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def incidence_row(rates: pd.DataFrame, label: str, groups: list[str], column: str = "pt") -> str:
    """The text of a row of an incidence table: label, then 'n (%) [CI]' per group, from a rate table."""
    rows = rates.loc[rates[column] == label].set_index("group")
    cells = []
    for group in groups:
        row = rows.loc[group]
        assert row["incidence_pct"] == pytest.approx(100 * row["n_with_event"] / row["n_subjects"])
        cells.append(
            f"{n_pct(int(row['n_with_event']), int(row['n_subjects']))} "
            f"[{row['incidence_ci_low']:.1f}, {row['incidence_ci_high']:.1f}]"
        )
    return label + " " + " ".join(cells)


def eair_row(rates: pd.DataFrame, label: str, groups: list[str]) -> str:
    rows = rates.loc[rates["pt"] == label].set_index("group")
    cells = [
        f"{rows.loc[g, 'eair_per_100py']:.1f} [{rows.loc[g, 'eair_ci_low']:.1f}, {rows.loc[g, 'eair_ci_high']:.1f}]"
        for g in groups
    ]
    return label + " " + " ".join(cells)


# --- the demo study: the same numbers as rates, signals and the overview page -----------------------------------


def test_make_committee_pack_pt_rows_equal_the_rates_command(demo_pack):
    cut = resolve_cut(demo_pack.engine)
    rates = compute_cut_rates(demo_pack.engine, cut, "pt")
    any_grade = demo_pack.section("4. Incidence by SOC and PT, any grade")
    for pt in ("Rash", "Hypothyroidism", "Hepatitis", "Pneumonitis", "Alanine aminotransferase increased"):
        assert incidence_row(rates, pt, DEMO_GROUPS) in any_grade, pt
    eair = demo_pack.section("5. EAIR by SOC and PT, any grade")
    for pt in ("Rash", "Hypothyroidism", "Hepatitis"):
        assert eair_row(rates, pt, DEMO_GROUPS) in eair, pt
    socs = compute_cut_rates(demo_pack.engine, cut, "soc")
    assert incidence_row(socs, "Endocrine disorders", DEMO_GROUPS, "soc") in any_grade
    severe = compute_cut_rates(demo_pack.engine, cut, "pt", min_grade=3)
    grade3 = demo_pack.section("6. Incidence by SOC and PT, grade \u2265 3")
    for pt in ("Pneumonitis", "Anaemia"):
        assert incidence_row(severe, pt, DEMO_GROUPS) in grade3, pt


def test_make_committee_pack_basket_rows_equal_rates_by_basket(demo_pack):
    cut = resolve_cut(demo_pack.engine)
    baskets = load_baskets(DEFAULT_BASKETS_FILE)
    rates = compute_cut_rates(demo_pack.engine, cut, "basket", baskets=baskets)
    section = demo_pack.section("8. Immune-related adverse events")
    for basket in ("skin", "endocrine", "hepatic"):
        assert incidence_row(rates, basket, DEMO_GROUPS) in section, basket
        assert eair_row(rates, basket, DEMO_GROUPS) in section, basket


def test_make_committee_pack_overview_equals_the_overview_page(demo_pack):
    from safety_dash.web.data import WebContext, load_cut
    from safety_dash.web.views import CutKey, load_overview

    engine = demo_pack.engine
    info = load_cut(engine, demo_pack.run_ids[-1])
    context = WebContext(engine, tuple(load_baskets(DEFAULT_BASKETS_FILE).items()))
    overview = load_overview(CutKey(context, info.run_id, info.derived_at), None, None, False, False, None)
    by_cohort = overview.by_cohort.set_index("cohort")
    section = demo_pack.section("2. Overview of treatment-emergent adverse events")
    for label, column in (
        ("Any TEAE", "teae"),
        ("Grade \u2265 3 TEAE", "grade3"),
        ("Serious TEAE", "serious"),
        ("Fatal TEAE (grade 5)", "fatal"),
        ("Immune-related TEAE (any basket)", "immune"),
    ):
        cells = []
        for group in DEMO_GROUPS:
            n = overview.counts[column] if group == "ALL" else int(by_cohort.loc[group, column])
            total = overview.n_dosed if group == "ALL" else int(by_cohort.loc[group, "n_dosed"])
            cells.append(f"{n_pct(n, total)} {clopper_pearson(n, total)}")
        assert f"{label} {' '.join(cells)}" in section, label


def test_make_committee_pack_exposure_equals_the_rate_table_denominators(demo_pack):
    cut = resolve_cut(demo_pack.engine)
    rates = compute_cut_rates(demo_pack.engine, cut, "soc").drop_duplicates("group").set_index("group")
    section = demo_pack.section("1. Exposure")
    years = " ".join(f"{rates.loc[g, 'exposure_years']:.1f}" for g in DEMO_GROUPS)
    assert f"Patient-years in the risk window {years}" in section
    dosed = " ".join(str(int(rates.loc[g, "n_subjects"])) for g in DEMO_GROUPS)
    assert f"Subjects dosed (safety population) {dosed}" in section
    assert "Subjects enrolled (DM) 3 3 20 40 25 66 88 120 135 500" in section  # the demo's 500, 2 never dosed


def test_make_committee_pack_flagged_signals_equal_the_signals_command(demo_pack):
    cut = resolve_cut(demo_pack.engine)
    section = demo_pack.section("10. Flagged signals")
    for by in ("pt", "soc"):
        flagged = compute_cut_signals(demo_pack.engine, cut, by).query("flagged")
        assert len(flagged) >= 1
        for r in flagged.itertuples():
            group = "All cohorts" if r.group == "ALL" else r.group
            numbers = (
                f"{r.x1} / {r.py1:.1f} {r.x0} / {r.py0:.1f} {r.rate_ratio:.2f} [{r.rr_ci_low:.2f}, {r.rr_ci_high:.2f}]"
            )
            assert f"{by.upper()} {r.test} {group} {r.soc}" in section
            assert numbers in section, (by, r.test, r.group, r.pt)
    # the demo's planted signals (safety_dash/ingest/demo.py)
    assert "PT rising Ph Ib NSCLC Hepatobiliary disorders Hepatitis" in section
    assert "PT cohort Ph Ib NPC Endocrine disorders Hypothyroidism" in section


def test_make_committee_pack_dlt_table_worked_by_hand(demo_pack):
    section = demo_pack.section("3. Dose-limiting toxicities by dose level")
    # AEDLT = Y in cut 3 on: 1 mg/kg 01-0006; 5 mg/kg 07-0018, 14-0014; 10 mg/kg 02-0023, 06-0020, 06-0139, each on
    # days 1..21 of dosed subjects followed > 21 days: 1/3, 2/40, 3/25 evaluable, 6/498 overall.
    assert f"Ph I 1 mg/kg 3 3 1 (33.3%) {clopper_pearson(1, 3)} 0" in section
    assert f"Ph I 5 mg/kg 40 40 2 (5.0%) {clopper_pearson(2, 40)} 0" in section
    assert f"Ph I 10 mg/kg 25 25 3 (12.0%) {clopper_pearson(3, 25)} 0" in section
    assert f"Ph Ib NPC 88 88 0 {clopper_pearson(0, 88)} 0" in section
    assert f"All cohorts 498 498 6 (1.2%) {clopper_pearson(6, 498)} 0" in section
    for usubjid in demo_pack.summary["planted"]["dlt"]:  # the two DLT-like events planted at 10 mg/kg
        assert re.search(rf"Ph I 10 mg/kg {usubjid} \d+ \w", section), usubjid


def test_make_committee_pack_deaths_within_30_and_90_days_by_hand(demo_pack):
    subjects, events = load_derived_frames(demo_pack.engine, demo_pack.run_ids[-1])
    dead = subjects.loc[subjects["SAFFL"] & subjects["DTHDT"].notna()]
    after = (dead["DTHDT"] - dead["TRTEDT"]).dt.days
    total = int(subjects["SAFFL"].sum())
    section = demo_pack.section("9. Deaths within 30 and 90 days")
    row30 = re.search(r"Within 30 days of the last dose ((?:\S+ (?:\(\S+\) )?){10})", section + " ")
    assert row30.group(1).split(" ")[-3:-1] == n_pct(int((after <= 30).sum()), total).split(" ")
    assert "Deaths in the cut" in section and n_pct(len(dead), total) in section
    assert int((after <= 90).sum()) >= int((after <= 30).sum()) > 0
    # each death is listed with its days after the last dose; a fatal AE's PT beside it
    fatal = demo_pack.summary["planted"]["fatal"]
    for item in fatal:
        row = dead.loc[dead["USUBJID"] == item["usubjid"]].iloc[0]
        days = (row["DTHDT"] - row["TRTEDT"]).days
        assert re.search(rf"{item['usubjid']} \S+(?: \S+)* {row['DTHDT']:%Y-%m-%d} {days} ", section), item


def test_make_committee_pack_lists_records_new_or_changed_since_the_previous_cut(demo_pack):
    _, events = load_derived_frames(demo_pack.engine, demo_pack.run_ids[-1])
    counted = events.loc[events["COUNTED"]]
    new, changed = (int((counted["RECORD_CHANGE"] == kind).sum()) for kind in ("new", "changed"))
    section = demo_pack.section("11. Events new or changed since cut 2")
    assert f"{new} new and {changed} changed counted AE records since cut 2 (cutoff 2022-09-30)" in section
    # the pneumonitis that was grade 3 in cut 2 and is fatal in cut 3 (planted)
    late = next(item for item in demo_pack.summary["planted"]["fatal"] if item["first_cut"] == "cut3")
    assert re.search(rf"{late['usubjid']} Ph Ib \w+ \d+ Pneumonitis 5 Y Y .*?changed: grade 3 \u2192 5", section)


def test_list_changed_events_since_an_older_cut(demo_pack):
    engine = demo_pack.engine
    cut = resolve_cut(engine)
    first = resolve_cut(engine, run_id=demo_pack.run_ids[0])
    inputs = load_pack_inputs(engine, cut, (first.run_id, first.cutoff), PackFilters())
    listed, removed = list_changed_events(inputs.events, inputs.subjects, first.run_id, inputs.since_keys)
    events = inputs.events
    expected = events.loc[events["COUNTED"] & (events["VALID_FROM_RUN"] > first.run_id)]
    assert sorted(listed["AE_ID"]) == sorted(expected["AE_ID"])
    in_first = set(inputs.since_keys)
    assert (listed["CHANGE"] == np.where(listed["RECORD_KEY"].isin(in_first), "changed", "new")).all()
    # cut 1's two duplicate AEs were deleted by cut 2 (planted "removed"), with the values they had in cut 1
    previous = inputs.previous_values(removed)
    planted = {(r["usubjid"], str(r["aeseq"])) for r in demo_pack.summary["planted"]["removed"]}
    assert {(u, str(int(float(s)))) for u, s in zip(previous["USUBJID"], previous["AESEQ"], strict=True)} == planted
    assert len(removed) == 2


def test_load_pack_frames_equals_load_derived_frames(demo_pack):
    from safety_dash.report.inputs import load_pack_frames

    for run_id in demo_pack.run_ids:
        expected, got = load_derived_frames(demo_pack.engine, run_id), load_pack_frames(demo_pack.engine, run_id)
        pd.testing.assert_frame_equal(got[0], expected[0])
        pd.testing.assert_frame_equal(got[1], expected[1][list(got[1].columns)])


def test_make_committee_pack_pages_title_contents_footer_and_orientation(demo_pack):
    pages = demo_pack.pages
    n = len(pages)
    for number, text in enumerate(pages, start=1):
        assert "Confidential" in text
        assert f"Page {number} of {n}" in text
    title = flatten(pages[0])
    assert "Committee pack Study QL1706-DEMO" in title
    assert "Data cut 3, cutoff 2023-03-31" in title and "New or changed since cut 2 (cutoff 2022-09-30)" in title
    assert "safety-dash 0.1.0" in title
    folder = demo_pack.path.parent / "demo" / "cut3"
    for name in ("dm.xpt", "ex.xpt", "ae.xpt"):
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() in title, name
    contents = flatten(pages[1])
    found = re.findall(r"(\d+) (Exposure|Flagged signals|Open alerts)\s?\.*\s?(\d+)", contents)
    assert [name for _, name, _ in found] == ["Exposure", "Flagged signals", "Open alerts"]
    for _, name, page in found:  # the contents' page numbers point at the section's first page
        assert re.search(rf"^\d+\. {name}", pages[int(page) - 1], re.MULTILINE), name
    socpt = [i for i, text in enumerate(pages) if "4. Incidence by SOC and PT, any grade" in text]
    assert socpt and all(demo_pack.landscape[i] for i in socpt)
    assert not demo_pack.landscape[0]  # the title page is portrait


def test_make_committee_pack_lists_open_alerts_with_evidence(demo_pack):
    from safety_dash.alerts.review import list_alerts

    with demo_pack.engine.connect() as connection:
        alerts = list_alerts(connection, "QL1706-DEMO", "open")
    section = demo_pack.section("13. Open alerts")
    assert f"{len(alerts)} open alert(s) of study QL1706-DEMO" in section
    bare = re.sub(r"\s+", "", section)  # lines may break after a hyphen inside a subject id
    for row in alerts.head(5).itertuples():
        assert re.sub(r"\s+", "", f"Alert {row.alert_id}: {row.title}") in bare
        assert re.sub(r"\s+", "", row.summary) in bare


def test_make_committee_pack_rejects_bad_requests_with_sentences(demo_pack, tmp_path):
    engine = demo_pack.engine
    with pytest.raises(ValueError, match="not a pack format; use pdf or html"):
        make_committee_pack(engine, output_format="docx", out_path=tmp_path / "x")
    with pytest.raises(ValueError, match="is not an earlier cut than 3"):
        make_committee_pack(engine, run_id=3, since_run_id=3, out_path=tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="data cut 99 does not exist"):
        make_committee_pack(engine, run_id=99, out_path=tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="cohort 'Ph II' has no dosed subject in cut 3; choose one of Ph I 0.3"):
        make_committee_pack(engine, filters={"cohort": "Ph II"}, out_path=tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="min_grade must be a CTCAE grade"):
        make_committee_pack(engine, filters={"min_grade": 7}, out_path=tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="the folder .* does not exist"):
        make_committee_pack(engine, out_path=tmp_path / "no" / "pack.pdf")
    assert not list(tmp_path.iterdir())


def test_make_committee_pack_download_for_one_cohort_and_grade(demo_pack):
    from pypdf import PdfReader

    engine = demo_pack.engine
    data, name = make_committee_pack_download(engine, "QL1706-DEMO", 3, cohort="Ph Ib NPC", min_grade=3)
    assert data.startswith(b"%PDF-") and name == "committee-pack_QL1706-DEMO_cut3_2023-03-31_Ph-Ib-NPC.pdf"
    import io

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
    text = flatten(" ".join(pages))
    assert "Filters cohort Ph Ib NPC; grade \u2265 3" in text
    assert "Ph Ib NSCLC" not in text.split("10. Flagged signals")[0]  # tables hold the chosen cohort only
    rates = compute_cut_rates(engine, resolve_cut(engine), "pt", min_grade=3)
    npc = rates.loc[rates["group"] == "Ph Ib NPC"]
    shown = npc.loc[npc["n_with_event"] > 0].iloc[0]
    assert incidence_row(rates, shown["pt"], ["Ph Ib NPC"]) in text


def test_make_committee_pack_writes_html(demo_pack, tmp_path):
    path = make_committee_pack(demo_pack.engine, output_format="html", out_path=tmp_path / "pack.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Confidential" in html
    assert html.count('src="data:image/svg+xml;base64,') >= 2  # the figures, as vector graphics inline


# --- the CDISC pilot: published figures and the rates command -------------------------------------------------


def test_pilot_pack_any_teae_is_the_published_table_14_5_01(pilot_pack):
    # CDISC pilot CSR, Table 14-5.01 "ANY BODY SYSTEM": Placebo 65 (75.6%), Xanomeline High Dose 76 (90.5%),
    # Xanomeline Low Dose 77 (91.7%) of 86, 84, 84 (TRT01A = ARM); total 218 of 254.
    section = pilot_pack.section("2. Overview of treatment-emergent adverse events")
    expected = " ".join(f"{n_pct(n, t)} {clopper_pearson(n, t)}" for n, t in ((65, 86), (76, 84), (77, 84), (218, 254)))
    assert f"Any TEAE {expected}" in section


def test_pilot_pack_pt_cells_are_the_published_ones_and_the_rates_commands(pilot_pack):
    engine = pilot_pack.engine
    rates = compute_cut_rates(engine, resolve_cut(engine), "pt")
    section = pilot_pack.section("4. Incidence by SOC and PT, any grade")
    for pt in ("SINUS BRADYCARDIA", "APPLICATION SITE PRURITUS", "VOMITING", "ERYTHEMA"):
        assert incidence_row(rates, pt, PILOT_GROUPS) in section, pt
    # CDISC pilot CSR, in-text Table 12-1: sinus bradycardia Placebo 2 (2.3%), Low Dose 7 (8.3%); vomiting High Dose
    # 7 (8.3%); application site pruritus High Dose 22 (26.2%).
    row = re.search(r"SINUS BRADYCARDIA (.*?) APPLICATION|SINUS BRADYCARDIA (.*)", section)
    cells = re.findall(r"(\d+ \(\d+\.\d%\)|0) \[", row.group(0))
    assert (cells[0], cells[2]) == ("2 (2.3%)", "7 (8.3%)")
    assert re.search(r"VOMITING \S+ \(\S+\) \[[^]]+\] 7 \(8\.3%\)", section)
    assert re.search(r"APPLICATION SITE PRURITUS \S+ \(\S+\) \[[^]]+\] 22 \(26\.2%\)", section)
    eair = pilot_pack.section("5. EAIR by SOC and PT, any grade")
    assert eair_row(rates, "APPLICATION SITE PRURITUS", PILOT_GROUPS) in eair


def test_pilot_pack_deaths_worked_by_hand_and_no_dlt_column(pilot_pack):
    # DM DTHDTC against the last EX end date: 01-704-1445 2014-11-01 / 2014-11-01 (0 days, COMPLETED SUICIDE),
    # 01-710-1083 2013-08-01 / 2013-08-02 (1 day, MYOCARDIAL INFARCTION), 01-701-1211 2013-01-12 / 2013-01-14 (2 days,
    # SUDDEN DEATH).
    section = pilot_pack.section("9. Deaths within 30 and 90 days")
    assert "01-704-1445 Placebo 2014-05-11 2014-11-01 2014-11-01 0 yes yes COMPLETED SUICIDE" in section
    assert "01-710-1083 Placebo 2013-07-22 2013-08-01 2013-08-02 1 yes yes MYOCARDIAL INFARCTION" in section
    assert "01-701-1211 Xanomeline Low Dose 2012-11-15 2013-01-12 2013-01-14 2 yes yes SUDDEN DEATH" in section
    assert "Within 30 days of the last dose 2 (2.3%) 0 1 (1.2%) 3 (1.2%)" in section
    assert "carry no DLT column (AEDLT)" in pilot_pack.section("3. Dose-limiting toxicities")
    assert not any(pilot_pack.landscape[:1])


def test_make_committee_pack_shows_the_review_status_of_the_cut(demo_pack):
    section = demo_pack.section("14. Review status of the cut")
    # nothing was reviewed when the pack was made: every AE record (1,076 in cut 3) and subject (500) needs review
    assert "AE records 1,076 0 0 1,076 1,076" in section
    assert "Subjects 500 0 0 500 500" in section


def test_load_review_status_counts_reviewed_and_outdated_records(demo_pack):
    from safety_dash.report.review_status import load_review_status
    from safety_dash.review.store import review_records

    engine = demo_pack.engine
    first, last = resolve_cut(engine, run_id=demo_pack.run_ids[0]), resolve_cut(engine)
    _, events1 = load_derived_frames(engine, first.run_id)
    _, events3 = load_derived_frames(engine, last.run_id)
    # review two AE records as delivered in cut 1: one unchanged since (reviewed in cut 3), one changed (outdated)
    kept = events3.loc[events3["VALID_FROM_RUN"] == first.run_id, "RECORD_KEY"].iloc[0]
    changed = events3.loc[events3["RECORD_KEY"].isin(events1["RECORD_KEY"]) & (events3["VALID_FROM_RUN"] > 1)]
    changed_key = changed["RECORD_KEY"].iloc[0]
    chosen = events1.loc[events1["RECORD_KEY"].isin([kept, changed_key]), ["RECORD_KEY", "AE_ID"]]
    with engine.begin() as connection:
        review_records(connection, "QL1706-DEMO", "ae", list(chosen.itertuples(index=False, name=None)), "monitor1")
    status = load_review_status(engine, last).set_index("record_type")
    assert status.loc["AE records", ["reviewed", "outdated", "not reviewed", "total"]].tolist() == [1, 1, 1074, 1076]
    assert status.loc["AE records", "needs review"] == 1075


def test_make_committee_pack_on_each_backend(database_url, tmp_path):
    """A small demo study (120 subjects, three cuts) on SQLite and PostgreSQL: the pack reads either the same way."""
    from pypdf import PdfReader

    from safety_dash.db.engine import get_engine
    from safety_dash.ingest.demo import write_demo_study
    from safety_dash.ingest.pipeline import ingest_extract

    write_demo_study(tmp_path / "demo", n_subjects=120)
    for cut in ("cut1", "cut2", "cut3"):
        assert ingest_extract(database_url, tmp_path / "demo" / cut).status == "succeeded"
    engine = get_engine(database_url)
    path = make_committee_pack(engine, out_path=tmp_path / "pack.pdf")
    text = flatten(" ".join(page.extract_text() for page in PdfReader(str(path)).pages))
    rates = compute_cut_rates(engine, resolve_cut(engine), "pt")
    groups = [g for g in DEMO_GROUPS if g in set(rates["group"])]
    assert incidence_row(rates, "Rash", groups) in text
    assert "AEDLT = Y" in text and "Events new or changed since cut 2" in text
