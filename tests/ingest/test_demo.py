"""The synthetic QL1706-DEMO study: three data cuts that read back, grow, evolve and hold the planted rows."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from safety_dash.analysis import CutContext, prepare_cut_frames
from safety_dash.ingest.demo import CUTOFFS, STUDYID, write_demo_study
from safety_dash.ingest.pipeline import read_extract
from safety_dash.ingest.validate import validate_extract
from safety_dash.metrics.events import DEFAULT_RELATED, derive_events
from safety_dash.metrics.exposure import DEFAULT_WINDOW_DAYS, derive_subject_exposure
from safety_dash.metrics.signals import compute_signals

CUTS = ("cut1", "cut2", "cut3")
DOMAINS = ("dm", "ex", "ae", "lb")
BAD_DATE = "2022-13-45"
ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
COHORTS = {
    "Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 3 mg/kg", "Ph I 5 mg/kg", "Ph I 10 mg/kg",
    "Ph Ib NSCLC", "Ph Ib NPC", "Ph Ib Cervical", "Ph Ib Other",
}  # fmt: skip
RELATED = {"RELATED", "PROBABLE", "POSSIBLE"}


def read_cuts(outdir: Path) -> dict[str, dict[str, pd.DataFrame]]:
    """Every domain of every cut, read back with pyreadstat."""
    return {cut: {d: pyreadstat.read_xport(str(outdir / cut / f"{d}.xpt"))[0] for d in DOMAINS} for cut in CUTS}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict, dict]:
    outdir = tmp_path_factory.mktemp("demo_small")
    summary = write_demo_study(outdir, n_subjects=120, seed=1706)
    return outdir, summary, read_cuts(outdir)


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> tuple[Path, dict, dict]:
    outdir = tmp_path_factory.mktemp("demo_default")
    summary = write_demo_study(outdir)
    return outdir, summary, read_cuts(outdir)


def dosed_subjects(cut: dict[str, pd.DataFrame]) -> set[str]:
    return set(cut["ex"]["USUBJID"])


def keyed(ae: pd.DataFrame) -> pd.DataFrame:
    return ae.assign(AESEQ=ae["AESEQ"].astype(int)).set_index(["USUBJID", "AESEQ"])


# files and metadata


def test_write_demo_study_files_read_back_with_labels(small):
    outdir, summary, cuts = small
    for cut in CUTS:
        assert (outdir / cut / "cutoff.txt").read_text(encoding="utf-8").strip() == CUTOFFS[cut].isoformat()
        assert summary["cuts"][cut]["cutoff"] == CUTOFFS[cut].isoformat()
        for domain in DOMAINS:
            frame, meta = pyreadstat.read_xport(str(outdir / cut / f"{domain}.xpt"))
            assert meta.table_name == domain.upper()
            assert len(frame) == summary["cuts"][cut]["rows"][domain] > 0
            assert all(re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", name) for name in frame.columns)
            assert all(meta.column_names_to_labels[name] for name in frame.columns)
            assert set(frame["STUDYID"]) == {STUDYID}
            assert set(frame["DOMAIN"]) == {domain.upper()}
    _, meta = pyreadstat.read_xport(str(outdir / "cut3" / "dm.xpt"))
    assert meta.column_names_to_labels["COHORT"] == "Cohort"
    assert meta.column_names_to_labels["AGE"] == "Age"


def test_write_demo_study_subject_ids_and_dm_values(small):
    _, _, cuts = small
    dm = cuts["cut3"]["dm"]
    assert dm["USUBJID"].str.fullmatch(r"QL1706-DEMO-\d{2}-\d{4}").all()
    assert dm["USUBJID"].is_unique
    assert set(dm["COUNTRY"]) == {"CHN"}
    assert 10 <= dm["SITEID"].nunique() <= 15
    assert dm["AGE"].between(18, 80).all()
    assert set(dm["COHORT"]) == COHORTS
    assert set(dm.loc[dm["COHORT"] == "Ph Ib Cervical", "SEX"]) == {"F"}
    assert set(dm.loc[dm["COHORT"].str.startswith("Ph Ib"), "ARM"]) == {"QL1706 5 mg/kg Q3W"}
    assert set(dm.loc[dm["COHORT"] == "Ph I 10 mg/kg", "ARM"]) == {"QL1706 10 mg/kg Q3W"}
    # two subjects consented but never dosed: in DM, not in EX, ACTARM "Not Treated"
    never = dm[dm["RFXSTDTC"] == ""]
    assert list(never["ACTARM"]) == ["Not Treated", "Not Treated"]
    assert not set(never["USUBJID"]) & dosed_subjects(cuts["cut3"])


def test_write_demo_study_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_subjects"):
        write_demo_study(tmp_path, n_subjects=10)
    with pytest.raises(ValueError, match="seed"):
        write_demo_study(tmp_path, seed="1706")


# reproducibility


def test_write_demo_study_same_seed_gives_identical_files(small, tmp_path):
    outdir, summary, _ = small
    again = write_demo_study(tmp_path, n_subjects=120, seed=1706)
    assert again["cuts"]["cut3"]["rows"] == summary["cuts"]["cut3"]["rows"]
    for cut in CUTS:
        for name in ("dm.xpt", "ex.xpt", "ae.xpt", "cutoff.txt"):
            assert (tmp_path / cut / name).read_bytes() == (outdir / cut / name).read_bytes(), f"{cut}/{name}"


def test_write_demo_study_other_seed_gives_other_data(small, tmp_path):
    _, _, cuts = small
    write_demo_study(tmp_path, n_subjects=120, seed=7)
    other = read_cuts(tmp_path)
    assert not other["cut3"]["ae"].equals(cuts["cut3"]["ae"])
    assert not other["cut3"]["ex"].equals(cuts["cut3"]["ex"])


# growth across cuts and what each cut may hold


def test_write_demo_study_subjects_grow_across_cuts(small):
    _, _, cuts = small
    subjects = [set(cuts[cut]["dm"]["USUBJID"]) for cut in CUTS]
    assert len(subjects[0]) < len(subjects[1]) < len(subjects[2]) == 120
    assert subjects[0] <= subjects[1] <= subjects[2]
    assert len(cuts["cut1"]["ex"]) < len(cuts["cut2"]["ex"]) < len(cuts["cut3"]["ex"])
    # a subject ongoing at cut1 (dosed, no RFXENDTC) has more infusions in cut2
    dm1 = cuts["cut1"]["dm"]
    ongoing = set(dm1.loc[(dm1["RFXSTDTC"] != "") & (dm1["RFXENDTC"] == ""), "USUBJID"])
    assert ongoing
    doses1 = cuts["cut1"]["ex"]["USUBJID"].value_counts()
    doses2 = cuts["cut2"]["ex"]["USUBJID"].value_counts()
    assert any(doses2[s] > doses1[s] for s in ongoing)


def test_write_demo_study_nothing_after_the_cutoff_but_the_bad_row(small):
    _, _, cuts = small
    for cut in CUTS:
        cutoff = CUTOFFS[cut].isoformat()
        dates = [
            cuts[cut]["ex"][["EXSTDTC", "EXENDTC"]],
            cuts[cut]["ae"][["AESTDTC", "AEENDTC"]],
            cuts[cut]["dm"][["RFXSTDTC", "RFXENDTC", "DTHDTC", "RFICDTC"]],
        ]
        values = pd.concat([frame.stack() for frame in dates])
        values = values[(values != "") & (values != BAD_DATE)]
        assert values.str.fullmatch(ISO_DATE).all()
        # partial dates compare by their first day: "2022" < "2022-03-31"
        assert (values <= cutoff).all(), values[values > cutoff].head()
    assert (cuts["cut2"]["ae"]["AESTDTC"] == BAD_DATE).sum() == 1
    assert (cuts["cut1"]["ae"]["AESTDTC"] == BAD_DATE).sum() == (cuts["cut3"]["ae"]["AESTDTC"] == BAD_DATE).sum() == 0


def test_write_demo_study_ex_rows_belong_to_dm_and_follow_q3w(small):
    _, _, cuts = small
    for cut in CUTS:
        ex, dm = cuts[cut]["ex"], cuts[cut]["dm"]
        assert set(ex["USUBJID"]) <= set(dm["USUBJID"])
        assert (ex["EXSTDTC"] == ex["EXENDTC"]).all()
        assert set(ex["EXTRT"]) == {"QL1706"} and set(ex["EXDOSU"]) == {"mg/kg"}
        assert set(ex["EXROUTE"]) == {"INTRAVENOUS"}
        assert set(ex["EXDOSE"]) <= {0.3, 1.0, 3.0, 5.0, 10.0}
        assert not ex.duplicated(["USUBJID", "EXSEQ"]).any()
    ex = cuts["cut3"]["ex"].assign(day=lambda f: pd.to_datetime(f["EXSTDTC"]))
    gaps = ex.sort_values(["USUBJID", "day"]).groupby("USUBJID")["day"].diff().dt.days.dropna()
    assert gaps.min() >= 20 and 21 <= gaps.median() <= 23 and gaps.max() > 27  # Q3W, with some delays
    first = ex.groupby("USUBJID")["day"].min().dt.strftime("%Y-%m-%d")
    dm = cuts["cut3"]["dm"].set_index("USUBJID")
    assert (dm.loc[first.index, "RFXSTDTC"] == first).all()


# adverse events


def test_write_demo_study_aeseq_unique_and_stable(small):
    _, _, cuts = small
    for cut in CUTS:
        assert not cuts[cut]["ae"].duplicated(["USUBJID", "AESEQ"]).any()
    one, two = keyed(cuts["cut1"]["ae"]), keyed(cuts["cut2"]["ae"])
    common = one.index.intersection(two.index)
    assert len(common) > 0.9 * len(one)
    assert (one.loc[common, "AETERM"] == two.loc[common, "AETERM"]).all()


def test_write_demo_study_records_change_and_are_removed_between_cuts(small):
    _, summary, cuts = small
    one, two = keyed(cuts["cut1"]["ae"]), keyed(cuts["cut2"]["ae"])
    removed = one.index.difference(two.index)
    assert 1 <= len(removed) <= 3
    planted = {(r["usubjid"], r["aeseq"]) for r in summary["planted"]["removed"]}
    assert planted <= set(removed)
    common = one.index.intersection(two.index)
    changed = (one.loc[common] != two.loc[common]).any(axis=1)
    assert changed.sum() >= 3
    ended = (one.loc[common, "AEENDTC"] == "") & (two.loc[common, "AEENDTC"] != "")
    assert ended.sum() >= 1
    assert len(two.index.difference(one.index)) > 20  # new events


def test_write_demo_study_bad_rows_only_in_cut2(small):
    _, summary, cuts = small
    orphans = {}
    for cut in CUTS:
        ae, dm = cuts[cut]["ae"], cuts[cut]["dm"]
        orphans[cut] = ae[~ae["USUBJID"].isin(dm["USUBJID"])]
    assert len(orphans["cut1"]) == len(orphans["cut3"]) == 0
    assert len(orphans["cut2"]) == 1
    typo = orphans["cut2"]["USUBJID"].iloc[0]
    assert typo.startswith("QL1706-DEMO-") and not re.fullmatch(r"QL1706-DEMO-\d{2}-\d{4}", typo)
    assert [row["reason"] for row in summary["planted"]["bad_rows"]] == ["USUBJID not in DM", "impossible AESTDTC"]
    # both are corrected in cut3: the subject's event is there under its real USUBJID and with a real date
    for row in summary["planted"]["bad_rows"]:
        fixed = keyed(cuts["cut3"]["ae"]).loc[(row["usubjid"], row["aeseq"])]
        assert fixed["AEDECOD"] == row["aedecod"] and ISO_DATE.fullmatch(fixed["AESTDTC"])


def test_write_demo_study_data_queries_in_every_cut(small):
    _, _, cuts = small
    for cut in CUTS:
        ae = cuts[cut]["ae"]
        uncoded = ae[(ae["AEDECOD"] == "") & (ae["AEBODSYS"] == "")]
        assert len(uncoded) == 1 and uncoded["AETERM"].iloc[0] != ""
        ungraded = ae[(ae["AETOXGR"] == "") & (ae["AESEV"] == "")]
        assert len(ungraded) == 1
        assert ((ae["AEDECOD"] == "") == (ae["AEBODSYS"] == "")).all()


def test_write_demo_study_grades_and_severity(small):
    _, _, cuts = small
    severity = {"1": "MILD", "2": "MODERATE", "3": "SEVERE", "4": "SEVERE", "5": "SEVERE", "": ""}
    for cut in CUTS:
        ae = cuts[cut]["ae"]
        assert set(ae["AETOXGR"]) <= {"", "1", "2", "3", "4", "5"}
        assert (ae["AETOXGR"].map(severity) == ae["AESEV"]).all()
        for flag in ("AESER", "AESDTH", "AESHOSP", "AESLIFE"):
            assert set(ae[flag]) <= {"Y", "N"}
        assert set(ae["AEREL"]) <= {"RELATED", "POSSIBLE", "PROBABLE", "UNLIKELY RELATED", "NOT RELATED"}
        assert set(ae["AEOUT"]) <= {"RECOVERED/RESOLVED", "RECOVERING/RESOLVING", "NOT RECOVERED/NOT RESOLVED", "FATAL"}
        assert set(ae["AEACN"]) <= {"DOSE NOT CHANGED", "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE"}
        assert ((ae["AEENDTC"] == "") | (ae["AEENDTC"] >= ae["AESTDTC"].str[:10]) | (ae["AESTDTC"] == BAD_DATE)).all()


def test_write_demo_study_grade_5_events_and_deaths(small):
    _, summary, cuts = small
    fatal = {cut: keyed(cuts[cut]["ae"]).query("AETOXGR == '5'") for cut in CUTS}
    assert len(fatal["cut1"]) < len(fatal["cut2"]) < len(fatal["cut3"]) == 3
    assert set(fatal["cut3"]["AEOUT"]) == {"FATAL"} and set(fatal["cut3"]["AESDTH"]) == {"Y"}
    assert set(fatal["cut3"]["AESER"]) == {"Y"}
    assert set(fatal["cut3"]["AEDECOD"]) == {"Pneumonitis", "Myocarditis"}
    dm = cuts["cut3"]["dm"].set_index("USUBJID")
    for (subject, _), row in fatal["cut3"].iterrows():
        assert dm.loc[subject, "DTHFL"] == "Y" and dm.loc[subject, "DTHDTC"] == row["AEENDTC"]
    # the cut3 fatal pneumonitis was a grade 3, ongoing event at cut2
    late = [(r["usubjid"], r["aeseq"]) for r in summary["planted"]["fatal"] if r["first_cut"] == "cut3"]
    at_cut2 = keyed(cuts["cut2"]["ae"]).loc[late[0]]
    assert at_cut2["AETOXGR"] == "3" and at_cut2["AEENDTC"] == "" and at_cut2["AEOUT"] != "FATAL"
    assert [r["first_cut"] for r in summary["planted"]["fatal"]] == ["cut1", "cut2", "cut3"]
    assert 1 <= (cuts["cut3"]["dm"]["DTHFL"] == "Y").sum() <= 0.4 * len(dm)


def test_write_demo_study_partial_pre_treatment_and_post_treatment_onsets(small):
    _, _, cuts = small
    ae = cuts["cut3"]["ae"].merge(cuts["cut3"]["dm"][["USUBJID", "RFXSTDTC", "RFXENDTC"]], on="USUBJID")
    lengths = ae["AESTDTC"].str.len().value_counts()
    assert lengths.get(7, 0) == 3 and lengths.get(4, 0) == 1
    in_first_month = (ae["AESTDTC"].str.len() == 7) & (ae["AESTDTC"] == ae["RFXSTDTC"].str[:7])
    assert in_first_month.sum() >= 2
    full = ae[ae["AESTDTC"].str.len() == 10]
    assert (full["AESTDTC"] < full["RFXSTDTC"]).sum() >= 1  # before the first dose
    ended = full[full["RFXENDTC"] != ""]
    after = (pd.to_datetime(ended["AESTDTC"]) - pd.to_datetime(ended["RFXENDTC"])).dt.days
    assert after.between(1, 90).sum() >= 1 and (after > 90).sum() >= 1
    assert (ae["AEENDTC"] == "").sum() >= 5  # ongoing events


def test_write_demo_study_dlt_like_events_at_10_mg_kg(small):
    _, _, cuts = small
    dm = cuts["cut3"]["dm"]
    first_six = dm[dm["COHORT"] == "Ph I 10 mg/kg"].sort_values(["RFICDTC", "USUBJID"]).head(6)
    ae = cuts["cut3"]["ae"].merge(first_six[["USUBJID", "RFXSTDTC"]], on="USUBJID")
    ae = ae[ae["AESTDTC"].str.len() == 10]
    day = (pd.to_datetime(ae["AESTDTC"]) - pd.to_datetime(ae["RFXSTDTC"])).dt.days + 1
    dlt = ae[(day <= 21) & (pd.to_numeric(ae["AETOXGR"], errors="coerce") >= 3) & ae["AEREL"].isin(RELATED)]
    assert dlt["USUBJID"].nunique() >= 2


# rates of the default-size study


def test_write_demo_study_default_rash_incidence_and_grade_3_share(default):
    _, summary, cuts = default
    assert summary["cuts"]["cut3"]["rows"]["dm"] == 500
    last = cuts["cut3"]
    dosed = dosed_subjects(last)
    ae = last["ae"][last["ae"]["USUBJID"].isin(dosed)]
    rash = ae.loc[ae["AEDECOD"] == "Rash", "USUBJID"].nunique() / len(dosed)
    assert 0.12 <= rash <= 0.30
    grade = pd.to_numeric(ae["AETOXGR"], errors="coerce")
    severe_related = ae.loc[(grade >= 3) & ae["AEREL"].isin(RELATED), "USUBJID"].nunique() / len(dosed)
    assert 0.08 <= severe_related <= 0.25
    assert 0.02 <= (grade >= 3).mean() <= 0.25  # share of records
    cohorts = last["dm"].set_index("USUBJID")["COHORT"]
    severe = ae.loc[grade >= 3, "USUBJID"].map(cohorts).value_counts()
    dosed_by_cohort = cohorts[list(dosed)].value_counts()
    phase_ib = dosed_by_cohort.index.str.startswith("Ph Ib")
    rate_ib = severe[severe.index.str.startswith("Ph Ib")].sum() / dosed_by_cohort[phase_ib].sum()
    assert severe["Ph I 10 mg/kg"] / dosed_by_cohort["Ph I 10 mg/kg"] > rate_ib


def test_write_demo_study_default_cut_sizes(default):
    _, summary, cuts = default
    sizes = [summary["cuts"][cut]["rows"]["dm"] for cut in CUTS]
    assert 150 <= sizes[0] < sizes[1] < sizes[2] == 500
    assert dt.date.fromisoformat(summary["cuts"]["cut1"]["cutoff"]) == dt.date(2022, 3, 31)
    assert (cuts["cut3"]["dm"]["COHORT"].str.startswith("Ph Ib")).mean() > 0.7


# the planted signals (DOMAIN.md §7), computed from the files without a database

HEPATITIS, HYPOTHYROIDISM = "Hepatitis", "Hypothyroidism"
HEP, ENDO = "Hepatobiliary disorders", "Endocrine disorders"
NSCLC, NPC = "Ph Ib NSCLC", "Ph Ib NPC"


def derive_cut_frames(folder: Path, cutoff: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(subjects, events) of one cut as ingestion derives them: the files read and validated (cut2's bad rows go to
    quarantine), the cohort column and AE_ID added as for a stored cut, then the exposure and event metrics."""
    extract = validate_extract(read_extract(folder), STUDYID)
    dm, ex, ae = (extract.frames[domain] for domain in ("dm", "ex", "ae"))
    ae = ae.assign(ID=range(1, len(ae) + 1))  # the AE version id a stored cut gives each record
    cut = CutContext(0, STUDYID, cutoff, DEFAULT_WINDOW_DAYS, None, DEFAULT_RELATED)
    dm, ex, ae = prepare_cut_frames(cut, dm, ex, ae)
    subjects = derive_subject_exposure(dm, ex, cut.cutoff, cut.window_days)
    events = derive_events(ae, subjects, cut.cutoff, cut.window_days, cut.related_values, cut.episode_key)
    return subjects, events


@pytest.fixture(scope="module")
def default_signals(default) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Per cut of the default study: (signals by PT and cohort against the previous cut, subjects, events)."""
    outdir, _, _ = default
    out, previous = {}, None
    for cut in CUTS:
        subjects, events = derive_cut_frames(outdir / cut, CUTOFFS[cut])
        signals = compute_signals(events, subjects, "pt", "COHORT_GROUP", previous, CUTOFFS[cut])
        out[cut], previous = (signals, subjects, events), CUTOFFS[cut]
    return out


def flagged_rows(signals: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in signals.loc[signals["flagged"], ["test", "group", "soc", "pt", "x1", "x0"]].values]


def test_write_demo_study_planted_signal_events(default):
    _, summary, cuts = default
    rising, cohort = summary["planted"]["signal_rising"], summary["planted"]["signal_cohort"]
    assert (len(rising), len(cohort)) == (14, 14)
    assert {(r["aedecod"], r["cohort"]) for r in rising} == {(HEPATITIS, NSCLC)}
    assert {(r["aedecod"], r["cohort"]) for r in cohort} == {(HYPOTHYROIDISM, NPC)}
    ae = {cut: keyed(cuts[cut]["ae"]) for cut in CUTS}
    planted = ae["cut3"].loc[[(r["usubjid"], r["aeseq"]) for r in rising + cohort]]
    # grade 1-2 and not serious: no alert rule of the demo fires on them
    assert set(planted["AETOXGR"]) <= {"1", "2"} and set(planted["AESER"]) == {"N"}
    assert set(planted["AESTDTC"].str.len()) == {10}
    # the rising hepatitis events all begin between cut2's and cut3's cutoffs, each a subject's first hepatitis
    onsets = ae["cut3"].loc[[(r["usubjid"], r["aeseq"]) for r in rising], "AESTDTC"]
    assert (onsets > CUTOFFS["cut2"].isoformat()).all() and (onsets <= CUTOFFS["cut3"].isoformat()).all()
    per_subject = ae["cut3"].query("AEDECOD == @HEPATITIS").groupby(level="USUBJID").size()
    assert (per_subject[[r["usubjid"] for r in rising]] == 1).all()
    # the out-of-line hypothyroidism events show up from the first cut on
    known = [sum((r["usubjid"], r["aeseq"]) in ae[cut].index for r in cohort) for cut in CUTS]
    assert 0 < known[0] < known[1] < known[2] == len(cohort)


def test_compute_signals_on_the_demo_cut1_flags_nothing(default_signals):
    signals, _, _ = default_signals["cut1"]
    # the first cut of a study has no rising rows; NPC's hypothyroidism is not yet out of line enough
    assert set(signals["test"]) == {"cohort"}
    assert flagged_rows(signals) == []


def test_compute_signals_on_the_demo_cut2_flags_only_the_out_of_line_cohort(default_signals):
    signals, _, _ = default_signals["cut2"]
    # nothing rises between cut1 and cut2: no rising row is flagged in any group
    assert flagged_rows(signals) == [("cohort", NPC, ENDO, HYPOTHYROIDISM, 18, 36)]


def test_compute_signals_on_the_demo_cut3_flags_exactly_the_planted_signals(default, default_signals):
    _, summary, _ = default
    signals, subjects, events = default_signals["cut3"]
    assert flagged_rows(signals) == [
        ("rising", "ALL", HEP, HEPATITIS, 15, 6),  # the 14 planted NSCLC subjects and one other after cut2
        ("rising", NSCLC, HEP, HEPATITIS, 14, 2),
        ("cohort", NPC, ENDO, HYPOTHYROIDISM, 27, 48),
        ("cohort", NSCLC, HEP, HEPATITIS, 16, 5),  # the rise makes NSCLC out of line for hepatitis too
    ]
    rows = signals.set_index(["test", "group", "pt"])
    rising_all, rising_nsclc = rows.loc[("rising", "ALL", HEPATITIS)], rows.loc[("rising", NSCLC, HEPATITIS)]
    assert rising_all["rate_ratio"] == pytest.approx(4.52, abs=0.01) and rising_all["rr_ci_low"] > 1.5
    assert rising_all["p_one_sided"] < 0.001 and rising_all["q_soc"] == pytest.approx(0.0146, abs=0.001)
    assert rising_nsclc["rate_ratio"] > 10 and rising_nsclc["q_pt"] < 0.001 and rising_nsclc["q_soc"] < 0.002
    npc = rows.loc[("cohort", NPC, HYPOTHYROIDISM)]
    assert npc["rate_ratio"] == pytest.approx(2.88, abs=0.01) and npc["rr_ci_low"] > 1.5 and npc["q_soc"] < 0.002
    # the x1 of NSCLC's rising hepatitis are exactly the planted subjects (those a listing marks as new)
    first = events[events["COUNTED"] & (events["PT"] == HEPATITIS)].groupby("USUBJID")["ASTDT"].min()
    cohort = subjects.set_index("USUBJID")["COHORT_GROUP"]
    new = first[(first > pd.Timestamp(CUTOFFS["cut2"])) & (cohort[first.index] == NSCLC)]
    assert sorted(new.index) == sorted(r["usubjid"] for r in summary["planted"]["signal_rising"])
