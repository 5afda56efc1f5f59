"""``python -m safety_dash rates``: the documented columns, the numbers of the stored cut, worked by hand."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from safety_dash.analysis import compute_cut_rates, load_baskets, resolve_cut
from safety_dash.cli import main
from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.db.engine import get_engine
from safety_dash.ingest.pipeline import ingest_extract
from tests.ingest.builders import ae_row, standard_extract, write_extract

COLUMNS = ("group,soc,pt,n_subjects,n_with_event,incidence_pct,incidence_ci_low,incidence_ci_high,n_events,"
           "patient_years_at_risk,eair_per_100py,eair_ci_low,eair_ci_high,exposure_years,eaer_per_100py,"
           "median_onset_day").split(",")  # fmt: skip


@pytest.fixture
def two_cuts(database_url, tmp_path):
    first = ingest_extract(
        database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=pd.Timestamp("2021-06-30").date()
    )
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-003", 2, "Rash", "2021-02-20", "3"))
    second = ingest_extract(
        database_url, write_extract(tmp_path / "cut2", extract), cutoff=pd.Timestamp("2021-06-30").date()
    )
    return database_url, first.run_id, second.run_id


def run_rates(monkeypatch, capsys, url: str, *args: str) -> str:
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    assert main(["rates", *args]) == 0
    return capsys.readouterr().out


def test_rates_by_soc_matches_a_table_worked_by_hand(two_cuts, monkeypatch, capsys):
    url, cut1, _ = two_cuts
    out = run_rates(monkeypatch, capsys, url, "--by", "soc", "--cut", str(cut1))
    table = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(table.columns) == COLUMNS
    skin = table[(table["group"] == "ALL") & (table["soc"] == "Skin and subcutaneous tissue disorders")].iloc[0]
    # Days at risk: T1-001 2021-01-04..2021-06-13 (last dose 03-15 + 90) = 161; T1-002 and T1-003 one dose + 90 = 91.
    # Skin events: T1-001 Rash on day 17; T1-002 Pruritus "2021-02" imputed to 2021-02-01, day 29; T1-003 none.
    assert skin["pt"] == ""
    assert (skin["n_subjects"], skin["n_with_event"], skin["n_events"]) == (3, 2, 2)
    assert skin["incidence_pct"] == pytest.approx(200 / 3, rel=1e-12)
    assert skin["patient_years_at_risk"] == pytest.approx((17 + 29 + 91) / 365.25, rel=1e-12)
    assert skin["eair_per_100py"] == pytest.approx(100 * 2 / ((17 + 29 + 91) / 365.25), rel=1e-12)
    assert skin["exposure_years"] == pytest.approx((161 + 91 + 91) / 365.25, rel=1e-12)
    assert skin["eaer_per_100py"] == pytest.approx(100 * 2 / ((161 + 91 + 91) / 365.25), rel=1e-12)
    assert float(skin["median_onset_day"]) == pytest.approx(23.0)
    # Cohort B (T1-002 alone) has the Endocrine SOC at zero: a row for every group and term.
    endocrine_b = table[(table["group"] == "B") & (table["soc"] == "Endocrine disorders")].iloc[0]
    assert (endocrine_b["n_subjects"], endocrine_b["n_with_event"], endocrine_b["median_onset_day"]) == (1, 0, "")
    assert sorted(set(table["group"])) == ["A", "ALL", "B"]


def test_rates_reads_the_latest_cut_by_default_and_an_earlier_one_on_request(two_cuts, monkeypatch, capsys):
    url, cut1, cut2 = two_cuts
    latest = json.loads(run_rates(monkeypatch, capsys, url, "--by", "pt", "--format", "json"))
    earlier = json.loads(run_rates(monkeypatch, capsys, url, "--by", "pt", "--cut", str(cut1), "--format", "json"))
    rash_latest = {r["group"]: r for r in latest if r["pt"] == "Rash"}
    rash_earlier = {r["group"]: r for r in earlier if r["pt"] == "Rash"}
    assert rash_earlier["A"]["n_with_event"] == 1
    assert rash_latest["A"]["n_with_event"] == 2  # T1-003's rash arrived in cut 2
    assert list(latest[0]) == COLUMNS


def test_rates_filters_grade_and_groups_by_any_dm_column(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    table = pd.read_csv(io.StringIO(run_rates(monkeypatch, capsys, url, "--by", "pt", "--min-grade", "3",
                                              "--group", "SEX")), keep_default_na=False)  # fmt: skip
    assert sorted(set(table["group"])) == ["ALL", "F"]
    assert sorted(set(table["pt"])) == ["Diarrhoea", "Rash"]  # grade 3 only: T1-003's diarrhoea and rash
    rash = table[(table["group"] == "ALL") & (table["pt"] == "Rash")].iloc[0]
    assert (rash["n_with_event"], rash["n_events"]) == (1, 1)


def test_rates_is_the_metrics_layer_on_the_stored_cut(two_cuts):
    url, _, cut2 = two_cuts
    engine = get_engine(url)
    cut = resolve_cut(engine, "T1")
    assert cut.run_id == cut2
    baskets = load_baskets(DEFAULT_BASKETS_FILE)
    table = compute_cut_rates(engine, cut, "basket", baskets=baskets)
    skin = table[(table["group"] == "ALL") & (table["pt"] == "skin")].iloc[0]
    assert (skin["soc"], skin["n_with_event"], skin["n_events"]) == ("", 3, 3)


def test_rates_refuses_an_unknown_cut_or_group(two_cuts, monkeypatch, capsys):
    url, _, _ = two_cuts
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    assert main(["rates", "--by", "pt", "--cut", "999"]) == 2
    assert "data cut 999 does not exist" in capsys.readouterr().err
    assert main(["rates", "--by", "pt", "--group", "NOPE"]) == 2
    assert "--group NOPE is not a DM column of study T1" in capsys.readouterr().err
