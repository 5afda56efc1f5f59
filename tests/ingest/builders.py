"""Small SDTM extracts written as CSV files for ingestion tests, row by row as a sender would."""

from __future__ import annotations

import csv
from pathlib import Path

DM_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "SITEID", "ARM", "ACTARM", "AGE", "SEX", "RFXSTDTC", "RFXENDTC",
              "DTHDTC", "DTHFL", "COHORT"]  # fmt: skip
EX_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC", "EXENDTC"]
AE_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AESPID", "AETERM", "AEDECOD", "AEBODSYS", "AETOXGR", "AESEV",
              "AESER", "AEREL", "AEOUT", "AESTDTC", "AEENDTC"]  # fmt: skip

LB_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBSTRESC", "LBSTRESN", "LBSTRESU",
              "LBSTNRLO", "LBSTNRHI", "LBBLFL", "VISIT", "LBDTC"]  # fmt: skip


def lb_row(usubjid: str, seq: int, test: str = "ALT", value: str = "30", date: str = "2021-01-04", **values) -> dict:
    row = {"STUDYID": "T1", "DOMAIN": "LB", "USUBJID": usubjid, "LBSEQ": str(seq), "LBTESTCD": test,
           "LBTEST": {"ALT": "Alanine Aminotransferase", "BILI": "Bilirubin"}.get(test, test), "LBSTRESC": value,
           "LBSTRESN": value, "LBSTRESU": "U/L", "LBSTNRLO": "0", "LBSTNRHI": "40", "LBBLFL": "", "VISIT": "",
           "LBDTC": date}  # fmt: skip
    return row | values


def dm_row(usubjid: str, first: str = "2021-01-04", last: str = "2021-03-15", cohort: str = "A", **values) -> dict:
    row = {"STUDYID": "T1", "DOMAIN": "DM", "USUBJID": usubjid, "SITEID": "01", "ARM": "Drug", "ACTARM": "Drug",
           "AGE": "60", "SEX": "F", "RFXSTDTC": first, "RFXENDTC": last, "DTHDTC": "", "DTHFL": "",
           "COHORT": cohort}  # fmt: skip
    return row | values


def ex_row(usubjid: str, seq: int, date: str, dose: str = "5") -> dict:
    return {"STUDYID": "T1", "DOMAIN": "EX", "USUBJID": usubjid, "EXSEQ": str(seq), "EXTRT": "QL1706",
            "EXDOSE": dose, "EXDOSU": "mg/kg", "EXSTDTC": date, "EXENDTC": date}  # fmt: skip


def ae_row(usubjid: str, seq: int, term: str = "Rash", start: str = "2021-01-20", grade: str = "2", **values) -> dict:
    row = {"STUDYID": "T1", "DOMAIN": "AE", "USUBJID": usubjid, "AESEQ": str(seq), "AESPID": str(seq),
           "AETERM": term,
           "AEDECOD": term, "AEBODSYS": "Skin and subcutaneous tissue disorders", "AETOXGR": grade, "AESEV": "",
           "AESER": "N", "AEREL": "RELATED", "AEOUT": "RECOVERED/RESOLVED", "AESTDTC": start,
           "AEENDTC": ""}  # fmt: skip
    return row | values


def standard_extract() -> dict[str, list[dict]]:
    """Three subjects, Q3W doses, four adverse events: the clean extract the bad-input tests start from."""
    dm = [dm_row("T1-001"), dm_row("T1-002", cohort="B"), dm_row("T1-003", first="2021-02-01", last="2021-02-01")]
    ex = [ex_row("T1-001", 1, "2021-01-04"), ex_row("T1-001", 2, "2021-01-25"), ex_row("T1-001", 3, "2021-03-15"),
          ex_row("T1-002", 1, "2021-01-04"), ex_row("T1-003", 1, "2021-02-01")]  # fmt: skip
    ae = [ae_row("T1-001", 1), ae_row("T1-001", 2, "Hypothyroidism", "2021-03-01", "1",
                                      AEBODSYS="Endocrine disorders"),
          ae_row("T1-002", 1, "Pruritus", "2021-02"), ae_row("T1-003", 1, "Diarrhoea", "2021-02-10", "3",
                                                               AEBODSYS="Gastrointestinal disorders")]  # fmt: skip
    return {"dm": dm, "ex": ex, "ae": ae}


def write_extract(folder: Path, domains: dict[str, list[dict]], delimiter: str = ",", bom: bool = False) -> Path:
    """Write each domain as ``<domain>.csv`` with the columns of its rows (first row's order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for domain, rows in domains.items():
        columns = {"dm": DM_COLUMNS, "ex": EX_COLUMNS, "ae": AE_COLUMNS, "lb": LB_COLUMNS}.get(domain)
        columns = columns or list(dict.fromkeys(c for r in rows for c in r))  # e.g. adlb: the rows' own columns
        columns = [c for c in columns if any(c in r for r in rows)] or columns
        with (folder / f"{domain}.csv").open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter=delimiter, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return folder
