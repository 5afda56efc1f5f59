"""Bad input on the command line (issue 8): a sentence and the documented exit code for every case, never a
traceback."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from tests.ingest.builders import standard_extract, write_extract
from tests.test_cli import run_cli


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"SAFETY_DASH_DATA_DIR": str(tmp_path / "data")}


def assert_refused(done, exit_code: int, message: str) -> None:
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert message in done.stdout + done.stderr


def test_ingest_names_a_folder_that_does_not_exist(tmp_path, env):
    done = run_cli("ingest", str(tmp_path / "nope"), env=env)
    assert_refused(done, 2, f"{tmp_path / 'nope'}: does not exist; name the folder holding the dm, ex and ae files")


def test_ingest_names_an_empty_folder(tmp_path, env):
    (tmp_path / "empty").mkdir()
    done = run_cli("ingest", str(tmp_path / "empty"), env=env)
    assert_refused(done, 2, "holds no dm, ex or ae file (.xpt, .sas7bdat or .csv; or adsl and adae): nothing to ingest")


@pytest.mark.parametrize(("present", "message"), [(("dm",), "no AE file"), (("dm", "ae"), "no EX file")])
def test_ingest_names_the_domain_a_folder_lacks(tmp_path, env, present, message):
    extract = standard_extract()
    folder = write_extract(tmp_path / "cut", {domain: extract[domain] for domain in present})
    assert_refused(run_cli("ingest", str(folder), env=env), 2, message)


def test_ingest_names_an_unreadable_transport_file(tmp_path, env):
    folder = write_extract(tmp_path / "cut", standard_extract())
    (folder / "ae.csv").unlink()
    (folder / "ae.xpt").write_bytes(b"not SAS at all".ljust(800, b" "))
    assert_refused(run_cli("ingest", str(folder), env=env), 2, "ae.xpt: not a readable SAS transport file")


def test_ingest_refuses_an_impossible_cutoff(tmp_path, env):
    done = run_cli("ingest", str(tmp_path), "--cutoff", "2021-13-01", env=env)
    assert_refused(done, 2, "argument --cutoff: '2021-13-01' is not a date YYYY-MM-DD")


def test_ingest_warns_about_a_cutoff_in_the_future_and_loads(tmp_path, env):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    done = run_cli("ingest", str(write_extract(tmp_path / "cut", standard_extract())), "--cutoff", future, env=env)
    assert done.returncode == 0, done.stderr
    assert f"warning: --cutoff {future} is in the future; nothing after today exists yet" in done.stderr


def test_ingest_refuses_a_study_id_that_is_not_a_safe_name(tmp_path, env):
    extract = standard_extract()
    for rows in extract.values():
        for row in rows:
            row["STUDYID"] = "../outside"
    done = run_cli("ingest", str(write_extract(tmp_path / "cut", extract)), env=env)
    assert_refused(done, 2, "dm.csv, column STUDYID: study id '../outside' is not allowed")
    assert not (tmp_path / "outside.yaml").exists()


def test_study_set_refuses_a_study_id_that_is_not_a_safe_name(env):
    assert_refused(run_cli("study", "set", "../x", "--window-days", "30", env=env), 2, "study id '../x' is not allowed")


@pytest.fixture
def one_cut(tmp_path, env):
    done = run_cli("ingest", str(write_extract(tmp_path / "cut", standard_extract())), "--cutoff", "2021-06-30",
                   env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return env


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--cut", "99999"), "error: data cut 99999 does not exist"),
        (("--group", "NOPE"), "error: --group NOPE is not a DM column of study T1"),
        (("--min-grade", "9"), "argument --min-grade: invalid choice: 9 (choose from 1, 2, 3, 4, 5)"),
        (("--study", "NOPE"), "error: no succeeded data cut of study NOPE"),
    ],
)
def test_rates_names_the_bad_option(one_cut, arguments, message):
    assert_refused(run_cli("rates", "--by", "pt", *arguments, env=one_cut), 2, message)


def test_ingest_of_a_copied_pilot_with_another_study_named_fails_as_a_file_problem(tmp_path, env, cdisc_pilot):
    folder = tmp_path / "cut"
    folder.mkdir()
    for name in ("dm.xpt", "ex.xpt", "ae.xpt"):
        shutil.copy(cdisc_pilot / "sdtm" / name, folder / name)
    done = run_cli("ingest", str(folder), "--study", "X", env=env)
    assert_refused(
        done, 2, "dm.xpt: STUDYID is CDISCPILOT01 in all 306 rows, not X; omit --study or name the study of the files"
    )
