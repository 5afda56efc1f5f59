"""The demo study's LB: one planted potential Hy's law case, new in cut 3; TSH follows hypothyroidism; stable keys."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from safety_dash.ingest.demo import write_demo_study
from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.labs import derive_lab_values, flag_hys_law
from tests.ingest.test_demo import read_cuts


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("demo-labs")
    summary = write_demo_study(outdir)
    return summary, read_cuts(outdir)


def _hys_law_cases(cut: dict[str, pd.DataFrame], cutoff: dt.date) -> list[str]:
    from safety_dash.lab_values import load_lab_criteria

    dm = cut["dm"].assign(COHORT_GROUP=cut["dm"]["COHORT"])
    ex = cut["ex"].assign(EXDOSE=pd.to_numeric(cut["ex"]["EXDOSE"]))
    subjects = derive_subject_exposure(dm, ex, cutoff, 90)
    lb = cut["lb"].copy()
    for column in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
        lb[column] = pd.to_numeric(lb[column])
    cases = flag_hys_law(derive_lab_values(lb, subjects, cutoff, 90, load_lab_criteria()))
    return sorted(cases.loc[cases["HYS_LAW"], "USUBJID"])


def test_the_planted_hys_law_case_is_the_only_one_and_new_in_cut3(demo):
    summary, cuts = demo
    planted = summary["planted"]["hys_law"]
    assert len(planted) == 1
    assert _hys_law_cases(cuts["cut2"], dt.date(2022, 9, 30)) == []
    assert _hys_law_cases(cuts["cut3"], dt.date(2023, 3, 31)) == planted


def test_lb_keys_are_stable_and_every_dosed_subject_has_a_baseline(demo):
    _, cuts = demo
    keys = {name: set(zip(cut["lb"]["USUBJID"], cut["lb"]["LBSEQ"], strict=True)) for name, cut in cuts.items()}
    assert keys["cut1"] <= keys["cut2"] <= keys["cut3"]
    lb3 = cuts["cut3"]["lb"]
    dosed = set(cuts["cut3"]["ex"]["USUBJID"])
    baseline = lb3.loc[lb3["LBBLFL"] == "Y"]
    assert set(baseline["USUBJID"]) == dosed
    assert (baseline.groupby("USUBJID").size() == 11).all()  # one baseline sample of each of the 11 tests


def test_tsh_rises_after_hypothyroidism(demo):
    _, cuts = demo
    ae, lb = cuts["cut3"]["ae"], cuts["cut3"]["lb"]
    onsets = ae.loc[ae["AEDECOD"] == "Hypothyroidism"].groupby("USUBJID")["AESTDTC"].min()
    tsh = lb.loc[lb["LBTESTCD"] == "TSH"].assign(VALUE=lambda f: pd.to_numeric(f["LBSTRESN"]))
    after = tsh.loc[tsh["LBDTC"] > tsh["USUBJID"].map(onsets).fillna("9999")]
    before = tsh.loc[tsh["LBDTC"] < tsh["USUBJID"].map(onsets).fillna("9999")]
    assert len(onsets) > 10 and after["USUBJID"].nunique() > 10
    # every subject with a sample after the onset shows TSH above the ULN of 4.0 mIU/L (it may settle once resolved)
    assert (after.groupby("USUBJID")["VALUE"].max() > 4.0).all()
    assert before.loc[before["USUBJID"].isin(onsets.index), "VALUE"].max() < 4.0
