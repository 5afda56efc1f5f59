"""The Labs and eDISH pages' numbers (``safety_dash.views.labs``) on a small study worked by hand from CTCAE v5.0, on
a study without LB, and on the CDISC pilot (whose only potential Hy's law case is 01-705-1186, worked in base R).

The hand-built study (``tests.ingest.builders.standard_extract``: T1-001 and T1-003 in cohort A, T1-002 in B):

=======  ===========================================  ==========================================================
subject  LB records                                   worked by hand
=======  ===========================================  ==========================================================
T1-001   ALT 30 (baseline), 130 on 2021-02-01         3.25×ULN: grade 2; shift 0 → 2
         bilirubin 10 (baseline), 50 on 2021-02-10    2.5×ULN, 9 days after ALT ≥ 3×ULN: potential Hy's law case
         ALP 260 on 2021-02-05 (ULN 100)              2.6×ULN between the two days: cholestatic
         potassium 4.0 (baseline), 2.7 on 2021-02-01  < 3.0–2.5 mmol/L: hypokalaemia grade 3; shift 0 → 3
T1-002   ALT 250 and bilirubin 8 on 2021-01-20        6.25×ULN: grade 3, no baseline; bilirubin 0.4×: Temple's
T1-003   ALT 45 on 2021-03-01, 900 on 2021-06-01      1.125×: grade 1; the 900 is after the risk window (2021-05-02):
                                                      not on treatment, but drawn on the box plot (before the cutoff)
=======  ===========================================  ==========================================================
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from safety_dash.db.engine import get_engine, upgrade_database
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.views.labs import (
    QUADRANTS,
    choose_lab_test,
    clear_lab_caches,
    lab_test_options,
    load_edish,
    load_lab_cut,
    load_shift,
    load_subject_labs,
    load_visit_boxes,
    load_worst_grade_distribution,
    load_worst_grade_view,
)
from tests.conftest import require_shared
from tests.ingest.builders import lb_row, standard_extract, write_extract

CUTOFF = pd.Timestamp("2021-06-30").date()
PILOT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "pharmaversesdtm"
PILOT_CASE = "01-705-1186"
UMOL = {"LBSTRESU": "umol/L", "LBSTNRHI": "20"}
MMOL = {"LBSTRESU": "mmol/L", "LBSTNRLO": "3.5", "LBSTNRHI": "5.0", "LBTEST": "Potassium"}


@dataclasses.dataclass(frozen=True)
class LabStudy:
    """A database holding one cut: its URL, run id, derivation time and study id."""

    url: str
    run_id: int
    derived_at: str
    study_id: str

    def lab(self):
        return load_lab_cut(get_engine(self.url), self.run_id, self.derived_at)


def lab_records() -> list[dict]:
    """The LB rows of the hand-built study (see the module's table)."""
    return [
        lb_row("T1-001", 1, "ALT", "30", "2021-01-04", LBBLFL="Y", VISIT="SCREENING"),
        lb_row("T1-001", 2, "ALT", "130", "2021-02-01", VISIT="WEEK 4"),
        lb_row("T1-001", 3, "BILI", "10", "2021-01-04", LBBLFL="Y", VISIT="SCREENING", **UMOL),
        lb_row("T1-001", 4, "BILI", "50", "2021-02-10", VISIT="WEEK 6", **UMOL),
        lb_row("T1-001", 5, "ALP", "260", "2021-02-05", VISIT="WEEK 5", LBSTNRHI="100", LBTEST="Alkaline Phosphatase"),
        lb_row("T1-001", 6, "K", "4.0", "2021-01-04", LBBLFL="Y", VISIT="SCREENING", **MMOL),
        lb_row("T1-001", 7, "K", "2.7", "2021-02-01", VISIT="WEEK 4", **MMOL),
        lb_row("T1-002", 1, "ALT", "250", "2021-01-20", VISIT="WEEK 2"),
        lb_row("T1-002", 2, "BILI", "8", "2021-01-20", VISIT="WEEK 2", **UMOL),
        lb_row("T1-003", 1, "ALT", "45", "2021-03-01", VISIT="WEEK 4"),
        lb_row("T1-003", 2, "ALT", "900", "2021-06-01", VISIT="FOLLOW-UP"),
    ]


def _ingest(root: Path, extract: dict, cutoff=CUTOFF) -> LabStudy:
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'labs.db'}"
    upgrade_database(url)
    result = ingest_extract(url, write_extract(root / "cut", extract), cutoff=cutoff)
    assert result.status == "succeeded", result.message
    from safety_dash.web.data import load_cut

    return LabStudy(url, result.run_id, load_cut(get_engine(url), result.run_id).derived_at, result.study_id)


def build_lab_study(root: Path) -> LabStudy:
    """The hand-built study with LB, in ``root``."""
    return _ingest(root, standard_extract() | {"lb": lab_records()})


def build_pilot(root: Path) -> LabStudy:
    """The CDISC pilot (dm, ex, ae, lb of pharmaversesdtm) cut at 2015-12-31, built once per test session."""
    pyreadr = pytest.importorskip("pyreadr")
    folder = require_shared(PILOT_SHARED)
    marker = root / "built.txt"
    if marker.exists():
        url, run_id, derived_at, study_id = marker.read_text().split("\n")
        return LabStudy(url, int(run_id), derived_at, study_id)
    extract = root / "extract"
    extract.mkdir(parents=True, exist_ok=True)
    for name in ("dm", "ex", "ae", "lb"):
        next(iter(pyreadr.read_r(str(folder / f"{name}.rda")).values())).to_csv(extract / f"{name}.csv", index=False)
    url = f"sqlite:///{root / 'pilot.db'}"
    upgrade_database(url)
    result = ingest_extract(url, extract, cutoff=pd.Timestamp("2015-12-31").date())
    assert result.status == "succeeded", result.message
    from safety_dash.web.data import load_cut

    study = LabStudy(url, result.run_id, load_cut(get_engine(url), result.run_id).derived_at, result.study_id)
    marker.write_text(f"{study.url}\n{study.run_id}\n{study.derived_at}\n{study.study_id}")
    return study


@pytest.fixture(scope="session")
def lab_study(tmp_path_factory) -> LabStudy:
    """The hand-built study with LB."""
    clear_lab_caches()
    return build_lab_study(tmp_path_factory.mktemp("lab-study"))


@pytest.fixture(scope="session")
def no_lab_study(tmp_path_factory) -> LabStudy:
    """The same study without LB."""
    return _ingest(tmp_path_factory.mktemp("no-lab-study"), standard_extract())


@pytest.fixture(scope="session")
def pilot(tmp_path_factory) -> LabStudy:
    """The CDISC pilot with LB (skipped without the shared data)."""
    return build_pilot(tmp_path_factory.getbasetemp() / "lab-pilot")


# --- the worst-grade view and the test chosen ---------------------------------------------------------------------


def test_load_worst_grade_view_orders_by_grade_3_and_narrows_by_min_grade(lab_study):
    lab = lab_study.lab()
    rows = load_worst_grade_view(lab, None, None)
    # ALT and potassium (low) each have one subject at grade >= 3; ALT also has a grade 2, so it comes first.
    assert rows[["test", "direction"]].head(2).values.tolist() == [["ALT", "H"], ["K", "L"]]
    alt = rows.iloc[0]
    counts = [alt[c] for c in ("n_with_value", "n_worst_grade_1", "n_worst_grade_2", "n_worst_grade_3")]
    assert counts == [3, 1, 1, 1] and alt["label"] == "Alanine Aminotransferase (ALT), high"
    assert alt["n_hys_law"] == 1
    assert load_worst_grade_view(lab, None, 3)[["test", "direction"]].values.tolist() == [["ALT", "H"], ["K", "L"]]
    # Cohort A: T1-001 (ALT grade 2, potassium grade 3) and T1-003 (ALT grade 1); cohort B: T1-002 (ALT grade 3).
    assert load_worst_grade_view(lab, "A", 3)["test"].tolist() == ["K"]
    assert load_worst_grade_view(lab, "B", 3)["test"].tolist() == ["ALT"]
    assert load_worst_grade_view(lab, None, 5).empty  # laboratory grades stop at 4


def test_choose_lab_test_defaults_to_the_first_row_and_keeps_a_valid_choice(lab_study):
    lab = lab_study.lab()
    assert choose_lab_test(lab, None, None) == ("ALT", "H")
    assert choose_lab_test(lab, None, None, "A", 3) == ("K", "L")
    assert choose_lab_test(lab, "k", "low") == ("K", "L")
    assert choose_lab_test(lab, "K", None) == ("K", "H")  # potassium is graded both ways: high first
    assert choose_lab_test(lab, "ALT", "low") == ("ALT", "H")  # ALT has no low criterion
    assert choose_lab_test(lab, "NOPE", None) == ("ALT", "H")
    values = [option["value"] for option in lab_test_options(lab)]
    assert sorted(values) == ["ALP", "ALT", "BILI", "K"]


def test_load_shift_and_worst_grade_distribution_of_alt(lab_study):
    lab = lab_study.lab()
    shift = load_shift(lab, "ALT", "H", None)
    cells = {(b, w): n for b, w, n in shift.astype(object).where(shift.notna(), None).itertuples(index=False) if n}
    # T1-001 baseline grade 0 -> 2; T1-002 and T1-003 have no baseline record: (none -> 3), (none -> 1).
    assert cells == {(0, 2): 1, (None, 3): 1, (None, 1): 1}
    assert len(shift) == 36  # every cell, zeros included
    cells_b = {(b, w): n for b, w, n in load_shift(lab, "ALT", "H", "B").astype(object).itertuples(index=False) if n}
    assert list(cells_b.values()) == [1]
    distribution = load_worst_grade_distribution(lab, "ALT", "H", None)
    every = distribution.loc[distribution["group"] == "ALL"].set_index("grade")
    assert every.loc[[1, 2, 3], "n_subjects"].tolist() == [1, 1, 1]
    assert every.loc[[1, 2, 3], "pct"].tolist() == pytest.approx([100 / 3] * 3)
    assert distribution["group"].drop_duplicates().tolist() == ["ALL", "A", "B"]
    potassium = load_shift(lab, "K", "L", "A")
    assert potassium.loc[potassium["n_subjects"] > 0, ["baseline_grade", "worst_grade"]].values.tolist() == [[0, 3]]


def test_load_visit_boxes_orders_visits_and_draws_grade_2_values(lab_study):
    boxes = load_visit_boxes(get_engine(lab_study.url), lab_study.run_id, lab_study.derived_at, "ALT", "H", None)
    # Visits in study-day order: screening (day 1), week 2 (day 17), week 4 (day 29), follow-up (day 121).
    assert boxes.boxes["VISIT"].drop_duplicates().tolist() == ["SCREENING", "WEEK 2", "WEEK 4", "FOLLOW-UP"]
    week4 = boxes.boxes.loc[(boxes.boxes["VISIT"] == "WEEK 4") & (boxes.boxes["GROUP"] == "A")].iloc[0]
    assert (week4["N"], week4["MEDIAN"]) == (2, pytest.approx((3.25 + 1.125) / 2, rel=1e-6))
    # Grade >= 2 values, most extreme first: 900 U/L (22.5 x ULN, grade 4), 250 (grade 3), 130 (grade 2).
    assert boxes.points["USUBJID"].tolist() == ["T1-003", "T1-002", "T1-001"]
    assert boxes.points["XULN"].tolist() == pytest.approx([22.5, 6.25, 3.25], rel=1e-6)
    assert boxes.points["GRADE"].tolist() == [4, 3, 2]
    only_b = load_visit_boxes(get_engine(lab_study.url), lab_study.run_id, lab_study.derived_at, "ALT", "H", "B")
    assert set(only_b.boxes["GROUP"]) == {"B"} and only_b.points["USUBJID"].tolist() == ["T1-002"]


# --- eDISH --------------------------------------------------------------------------------------------------------


def test_load_edish_places_each_subject_in_its_quadrant(lab_study):
    edish = load_edish(lab_study.lab(), None)
    points = edish.points.set_index("USUBJID")
    assert points.loc["T1-001", ["X", "Y"]].tolist() == pytest.approx([3.25, 2.5])
    assert points.loc["T1-002", ["X", "Y"]].tolist() == pytest.approx([6.25, 0.4])
    assert [QUADRANTS[q] for q in points["QUADRANT"]] == ["Potential Hy's law range", "Temple's corollary"]
    assert points["HYS_LAW"].tolist() == [True, False]
    assert (edish.n_screened, edish.n_placed) == (3, 2)  # T1-003 has no bilirubin: not placed
    counts = edish.quadrants.set_index("group")
    assert counts.loc["ALL", list(QUADRANTS) + ["not placed"]].tolist() == [1, 1, 0, 0, 1]
    assert counts.loc["A", list(QUADRANTS) + ["not placed"]].tolist() == [1, 0, 0, 0, 1]
    case = edish.cases.iloc[0]
    assert (case["USUBJID"], case["GROUP"]) == ("T1-001", "A")
    assert (f"{case['TRANSAMINASE_ADT']:%Y-%m-%d}", f"{case['BILI_ADT']:%Y-%m-%d}") == ("2021-02-01", "2021-02-10")
    assert case["ALP_XULN"] == pytest.approx(2.6) and bool(case["CHOLESTASIS"])
    only_b = load_edish(lab_study.lab(), "B")
    assert only_b.points["USUBJID"].tolist() == ["T1-002"] and only_b.cases.empty
    assert only_b.quadrants["group"].tolist() == ["B"]


def test_load_edish_samples_the_normal_range_only():
    n = 50
    rng = np.random.default_rng(0)
    hys = pd.DataFrame({"USUBJID": [f"S{i:03d}" for i in range(n)], "GROUP": "A",
                        "PEAK_ALT_AST_XULN": rng.uniform(0.2, 0.9, n), "PEAK_BILI_XULN": rng.uniform(0.2, 0.9, n),
                        "HYS_LAW": False})  # fmt: skip
    hys.loc[:4, ["PEAK_ALT_AST_XULN", "PEAK_BILI_XULN"]] = [[4, 3], [5, 1], [1, 2.5], [3, 2], [2.9999, 1.9999]]
    hys.loc[:0, "HYS_LAW"] = True
    lab = SimpleNamespace(hys_law=hys, groups=("A",))  # load_edish reads the Hy's law screen and the cohorts
    edish = load_edish(lab, None, max_points=10)
    assert len(edish.points) == 10 and edish.n_placed == n
    drawn = set(edish.points["USUBJID"])
    assert {"S000", "S001", "S002", "S003"} <= drawn  # every subject outside the normal range is drawn
    assert edish.quadrants.set_index("group").loc["ALL", list(QUADRANTS)].tolist() == [2, 1, 1, n - 4]  # 3 x ULN: on
    assert load_edish(lab, None, max_points=10).points.equals(edish.points)  # a fixed sample


# --- the subject's lab panel, a study without LB, the pilot -------------------------------------------------------


def test_load_subject_labs_of_the_hys_law_case(lab_study):
    labs = load_subject_labs(lab_study.lab(), "T1-001")
    assert len(labs.records) == 7
    assert labs.records.loc[labs.records["TEST"] == "ALT", "XULN"].tolist() == pytest.approx([0.75, 3.25])
    worst = labs.worst[["TEST", "DIRECTION", "WORST_GRADE"]].astype(object).values.tolist()
    assert worst == [["K", "L", 3], ["ALP", "H", 2], ["ALT", "H", 2], ["BILI", "H", 2]]
    assert bool(labs.hys_law["HYS_LAW"]) and labs.n_undated == 0
    assert load_subject_labs(lab_study.lab(), "T1-999").records.empty


def test_a_study_without_lb_has_no_lab_values(no_lab_study):
    lab = no_lab_study.lab()
    assert not lab.has_labs
    assert choose_lab_test(lab, "ALT", None) == (None, None)
    assert load_worst_grade_view(lab, None, 3).empty
    edish = load_edish(lab, None)
    assert edish.points.empty and edish.cases.empty and edish.n_screened == 0
    assert load_subject_labs(lab, "T1-001").records.empty


def test_on_the_pilot_only_01_705_1186_is_in_the_hys_law_range(pilot):
    lab = pilot.lab()
    edish = load_edish(lab, None)
    assert len(edish.points) == edish.n_placed  # 247 subjects screened: every one drawn
    upper_right = edish.points.loc[(edish.points["X"] >= 3) & (edish.points["Y"] >= 2)]
    assert upper_right["USUBJID"].tolist() == [PILOT_CASE]
    case = edish.cases.set_index("USUBJID").loc[PILOT_CASE]
    # ALT 3.34, AST 3.97, bilirubin 5.94 x ULN on 2014-01-23, ALP 5.84 x ULN: cholestatic (worked in base R).
    assert [round(case[c], 2) for c in ("PEAK_ALT_XULN", "PEAK_AST_XULN", "PEAK_BILI_XULN", "ALP_XULN")] == [
        3.34, 3.97, 5.94, 5.84]  # fmt: skip
    assert case["GROUP"] == "Placebo" and len(edish.cases) == 1
    assert edish.quadrants.set_index("group").loc["Placebo", QUADRANTS[0]] == 1


def test_on_the_pilot_the_shift_tables_are_the_metrics(pilot):
    from safety_dash.analysis import GROUP_COLUMN, resolve_cut
    from safety_dash.lab_values import compute_cut_lab_values
    from safety_dash.metrics.labs import compute_shift_table

    lab = pilot.lab()
    values, subjects = compute_cut_lab_values(
        get_engine(pilot.url), resolve_cut(get_engine(pilot.url), None, pilot.run_id)
    )
    pairs = lab.shifts[["test", "direction"]].drop_duplicates().values.tolist()
    # The labs table's 19 test directions but the two the criteria call not gradable (high glucose, TSH).
    assert len(pairs) == 17 and ["K", "L"] in pairs and ["TSH", "H"] not in pairs
    for test, direction in pairs:
        expected = compute_shift_table(values, test, direction, subjects, GROUP_COLUMN)
        shown = lab.shifts.loc[(lab.shifts["test"] == test) & (lab.shifts["direction"] == direction)]
        assert shown.drop(columns=["test", "direction"]).reset_index(drop=True).equals(expected), (test, direction)


def test_the_pilot_lb_read_in_chunks_equals_it_read_in_one_piece(pilot):
    # 59,580 records in chunks of 7,001 (the last one short), each repeated text held once across chunks.
    from safety_dash.analysis import resolve_cut
    from safety_dash.lab_values import load_cut_lab_records

    engine = get_engine(pilot.url)
    cut = resolve_cut(engine, None, pilot.run_id)
    whole = load_cut_lab_records(engine, cut, chunk_rows=10**9)
    chunked = load_cut_lab_records(engine, cut, chunk_rows=7_001)
    assert len(whole) == 59_580
    pd.testing.assert_frame_equal(chunked, whole)
    codes = chunked["LBTESTCD"].to_numpy()
    first_alt = np.flatnonzero(codes == "ALT")
    assert first_alt[0] < 7_001 < first_alt[-1]
    assert codes[first_alt[0]] is codes[first_alt[-1]]  # one string object for every ALT of the cut
