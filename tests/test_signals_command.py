"""``python -m safety_dash signals``: the documented columns, stored per cut, numbers worked by hand and by R.

R 4.2 gave the interval and p values written below (``poisson.test``, ``binom.test``); the tests never call R.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from safety_dash.analysis import load_derived_frames, resolve_cut
from safety_dash.cli import main
from safety_dash.db.engine import get_engine
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.metrics.signals import compute_signals
from safety_dash.signal_store import compute_cut_signals, load_cut_signals
from tests.ingest.builders import ae_row, dm_row, ex_row, standard_extract, write_extract

COLUMNS = ("test,group,soc,pt,x1,py1,x0,py0,rate_ratio,rr_ci_low,rr_ci_high,p_one_sided,q_pt,q_soc,flagged,"
           "first_flagged_run").split(",")  # fmt: skip
YEAR = 365.25
SKIN = "Skin and subcutaneous tissue disorders"


@pytest.fixture
def two_cuts(database_url, tmp_path):
    """Cut 1 (cutoff 2021-06-30): the standard extract. Cut 2 (cutoff 2021-12-31) adds T1-004, cohort B, dosed
    once on 2021-07-05 (risk window to 2021-10-03), with Rash on day 11 and Colitis on day 28."""
    first = ingest_extract(
        database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=pd.Timestamp("2021-06-30").date()
    )
    extract = standard_extract()
    extract["dm"].append(dm_row("T1-004", first="2021-07-05", last="2021-07-05", cohort="B"))
    extract["ex"].append(ex_row("T1-004", 1, "2021-07-05"))
    extract["ae"].append(ae_row("T1-004", 1, "Rash", "2021-07-15", "2"))
    extract["ae"].append(ae_row("T1-004", 2, "Colitis", "2021-08-01", "3", AEBODSYS="Gastrointestinal disorders"))
    second = ingest_extract(
        database_url, write_extract(tmp_path / "cut2", extract), cutoff=pd.Timestamp("2021-12-31").date()
    )
    assert (first.status, second.status) == ("succeeded", "succeeded")
    return database_url, first.run_id, second.run_id


def run_signals(monkeypatch, capsys, url: str, *args: str) -> str:
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    assert main(["signals", *args]) == 0
    return capsys.readouterr().out


def read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)


def test_signals_first_cut_has_cohort_rows_only(two_cuts, monkeypatch, capsys):
    url, cut1, _ = two_cuts
    table = read_csv(run_signals(monkeypatch, capsys, url, "--cut", str(cut1)))
    assert list(table.columns) == COLUMNS
    assert set(table["test"]) == {"cohort"}
    assert sorted(set(table["group"])) == ["A", "B"]  # no ALL row for the cohort test


def test_signals_rising_matches_a_table_worked_by_hand_and_r(two_cuts, monkeypatch, capsys):
    url, _, cut2 = two_cuts
    table = read_csv(run_signals(monkeypatch, capsys, url))
    rising = table[(table["test"] == "rising") & (table["group"] == "ALL")].set_index("pt")
    # Rash. Before t0 = 2021-06-30: T1-001 (Rash on day 17: 17 days), T1-002 (91 days), T1-003 (91 days);
    # after it: T1-004, first dose after t0, Rash on day 11 (11 days). x1 = 1, x0 = 1.
    rash = rising.loc["Rash"]
    assert (rash["soc"], rash["x1"], rash["x0"]) == (SKIN, "1", "1")
    assert float(rash["py1"]) == pytest.approx(11 / YEAR, rel=1e-12)
    assert float(rash["py0"]) == pytest.approx(199 / YEAR, rel=1e-12)
    assert float(rash["rate_ratio"]) == pytest.approx(199 / 11, rel=1e-12)
    # poisson.test(c(1, 1), c(11, 199) / 365.25)$conf.int; binom.test(1, 2, 11 / 210, alternative = "greater")
    assert float(rash["rr_ci_low"]) == pytest.approx(0.230466731786333, rel=1e-10)
    assert float(rash["rr_ci_high"]) == pytest.approx(1420.079111630573152, rel=1e-10)
    assert float(rash["p_one_sided"]) == pytest.approx(0.102018140589569, rel=1e-10)
    # BH within the Skin SOC of this family: Rash p = 0.102 (rank 1 of 2), Pruritus p = 1: q = 2 x 0.102.
    assert float(rash["q_pt"]) == pytest.approx(2 * 0.102018140589569, rel=1e-10)
    assert rash["flagged"] == "0"
    assert rash["first_flagged_run"] == ""


def test_signals_x0_zero_leaves_the_ratio_and_upper_bound_empty(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    table = read_csv(run_signals(monkeypatch, capsys, url))
    colitis = table[(table["test"] == "rising") & (table["group"] == "ALL") & (table["pt"] == "Colitis")].iloc[0]
    # Colitis only in T1-004 (day 28, after t0): py1 = 28 days; py0 = 161 + 91 + 91 days of the others.
    assert (colitis["x1"], colitis["x0"]) == ("1", "0")
    assert float(colitis["py1"]) == pytest.approx(28 / YEAR, rel=1e-12)
    assert float(colitis["py0"]) == pytest.approx(343 / YEAR, rel=1e-12)
    assert (colitis["rate_ratio"], colitis["rr_ci_high"]) == ("", "")
    assert float(colitis["rr_ci_low"]) == pytest.approx(0.314102564102564, rel=1e-10)
    assert float(colitis["p_one_sided"]) == pytest.approx(0.0754716981132075, rel=1e-10)


def test_signals_json_has_the_same_rows_with_nulls(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    records = json.loads(run_signals(monkeypatch, capsys, url, "--format", "json"))
    colitis = next(r for r in records if (r["test"], r["group"], r["pt"]) == ("rising", "ALL", "Colitis"))
    assert list(colitis) == COLUMNS
    assert (colitis["rate_ratio"], colitis["rr_ci_high"], colitis["flagged"], colitis["first_flagged_run"]) == (
        None,
        None,
        0,
        None,
    )
    assert colitis["py1"] == pytest.approx(28 / YEAR, rel=1e-12)


def test_signals_by_soc_and_filters(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    table = read_csv(run_signals(monkeypatch, capsys, url, "--by", "soc", "--min-grade", "3"))
    # Grade >= 3: Diarrhoea (T1-003, cut 1) and Colitis (T1-004, cut 2), both Gastrointestinal disorders.
    assert set(table["soc"]) == {"Gastrointestinal disorders"}
    assert set(table["pt"]) == {""} and set(table["q_soc"]) == {""}
    gi = table[(table["test"] == "rising") & (table["group"] == "ALL")].iloc[0]
    assert (gi["x1"], gi["x0"]) == ("1", "1")


def test_signals_stored_at_derivation_equal_the_metric_on_the_stored_frames(two_cuts):
    url, cut1, cut2 = two_cuts
    engine = get_engine(url)
    cut = resolve_cut(engine, None, cut2)
    subjects, events = load_derived_frames(engine, cut2)
    for analysis in ("pt", "soc"):
        stored = load_cut_signals(engine, cut2, analysis)
        assert stored is not None
        expected = compute_signals(events, subjects, analysis, "COHORT_GROUP", dt_date("2021-06-30"), cut.cutoff)
        pd.testing.assert_frame_equal(
            stored.drop(columns="first_flagged_run").reset_index(drop=True),
            expected.reset_index(drop=True),
            check_dtype=False,
        )


def dt_date(text: str):
    return pd.Timestamp(text).date()


def test_signals_refuses_an_unknown_cut_or_group(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    assert main(["signals", "--cut", "99999"]) == 2
    assert "data cut 99999 does not exist" in capsys.readouterr().err
    assert main(["signals", "--group", "NOPE"]) == 2
    assert "--group NOPE is not a DM column" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_cuts(tmp_path_factory):
    """The demo study's three cuts, then cut 3's extract again with a later cutoff (a cut without change)."""
    folder = tmp_path_factory.mktemp("demo-signals")
    url = f"sqlite:///{folder / 'demo.db'}"
    from safety_dash.db.engine import upgrade_database

    upgrade_database(url)
    write_demo_study(folder / "demo")
    runs = [ingest_extract(url, folder / "demo" / cut).run_id for cut in ("cut1", "cut2", "cut3")]
    shutil.copytree(folder / "demo" / "cut3", folder / "unchanged")
    (folder / "unchanged" / "cutoff.txt").unlink(missing_ok=True)
    runs.append(ingest_extract(url, folder / "unchanged", cutoff=dt_date("2023-04-30")).run_id)
    return url, runs


def flagged_rows(url: str, run_id: int) -> list[tuple]:
    engine = get_engine(url)
    table = compute_cut_signals(engine, resolve_cut(engine, None, run_id))
    rows = table[table["flagged"]]
    return sorted(zip(rows["test"], rows["group"], rows["pt"], rows["first_flagged_run"].astype(int), strict=True))


def test_signals_flag_the_demo_planted_signals_and_say_since_when(demo_cuts):
    url, (cut1, cut2, cut3, _) = demo_cuts
    assert flagged_rows(url, cut1) == []
    assert flagged_rows(url, cut2) == [("cohort", "Ph Ib NPC", "Hypothyroidism", cut2)]
    assert flagged_rows(url, cut3) == [
        ("cohort", "Ph Ib NPC", "Hypothyroidism", cut2),
        ("cohort", "Ph Ib NSCLC", "Hepatitis", cut3),
        ("rising", "ALL", "Hepatitis", cut3),
        ("rising", "Ph Ib NSCLC", "Hepatitis", cut3),
    ]


def test_signals_a_cut_without_change_flags_nothing_rising(demo_cuts):
    url, (_, _, _, unchanged) = demo_cuts
    engine = get_engine(url)
    table = compute_cut_signals(engine, resolve_cut(engine, None, unchanged))
    rising = table[table["test"] == "rising"]
    assert len(rising) > 0 and rising["x1"].sum() == 0
    assert not rising["flagged"].any()
    # The out-of-line cohorts stay flagged, still since the cut that first flagged them.
    flagged = table[table["flagged"]]
    assert set(zip(flagged["group"], flagged["pt"], strict=True)) == {
        ("Ph Ib NPC", "Hypothyroidism"),
        ("Ph Ib NSCLC", "Hepatitis"),
    }
    assert np.all(flagged["first_flagged_run"].to_numpy() < unchanged)
