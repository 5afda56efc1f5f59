"""What each domain must and may hold, and how ADaM input maps onto it (DOMAIN.md §1)."""

from __future__ import annotations

import pandas as pd

#: Columns a file must have; without one the run fails, since no row could be placed or read.
REQUIRED = {
    "dm": ("USUBJID", "RFXSTDTC", "RFXENDTC", "DTHDTC"),
    "ex": ("USUBJID", "EXTRT", "EXDOSE", "EXSTDTC"),
    "ae": ("USUBJID", "AETERM", "AEDECOD", "AEBODSYS", "AESTDTC"),
    "lb": ("USUBJID", "LBTESTCD", "LBDTC"),
}

#: Columns stored as their own database columns (lower-cased); any other column is kept in ``extra``.
STANDARD = {
    "dm": ("USUBJID", "SITEID", "ARM", "ACTARM", "AGE", "SEX", "RFXSTDTC", "RFXENDTC", "DTHDTC", "DTHFL"),
    "ex": ("USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC", "EXENDTC"),
    "ae": (
        "USUBJID", "AESEQ", "AESPID", "AETERM", "AEDECOD", "AEBODSYS", "AETOXGR", "AESEV", "AESER", "AESDTH",
        "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE", "AEREL", "AEACN", "AEOUT", "AESTDTC", "AEENDTC",
        "AEGRPID",
    ),
    "lb": (
        "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBORRES", "LBORRESU", "LBSTRESC", "LBSTRESN", "LBSTRESU",
        "LBSTNRLO", "LBSTNRHI", "LBNRIND", "LBBLFL", "LBLOBXFL", "VISITNUM", "VISIT", "LBDTC",
    ),
}  # fmt: skip

#: Optional domains: an extract without them loads as before, and leaves their stored records as they were.
OPTIONAL_DOMAINS = ("lb",)
#: Every domain, in loading order (DM first: the others are checked against its subjects).
DOMAINS = ("dm", "ex", "ae", "lb")
#: Numeric columns: stored as numbers; a value that is not a number quarantines the row.
NUMERIC_COLUMNS = {"ex": ("EXDOSE",), "lb": ("LBSTRESN", "LBSTNRLO", "LBSTNRHI")}

#: ISO 8601 date columns checked on every row.
DATE_COLUMNS = {
    "dm": ("RFXSTDTC", "RFXENDTC", "DTHDTC"),
    "ex": ("EXSTDTC", "EXENDTC"),
    "ae": ("AESTDTC", "AEENDTC"),
    "lb": ("LBDTC",),
}

#: Columns never stored: the domain code and the study (kept on the study row).
DROPPED = ("STUDYID", "DOMAIN")

#: ADaM variables that stand in for an SDTM one when the SDTM one is absent, in order of preference.
ADAM_TO_SDTM = {
    "adsl": {"RFXSTDTC": ("TRTSDT", "TRTSDTM"), "RFXENDTC": ("TRTEDT", "TRTEDTM"), "DTHDTC": ("DTHDT",)},
    "adae": {
        "AESTDTC": ("ASTDT", "ASTDTM"),
        "AEENDTC": ("AENDT", "AENDTM"),
        "AETOXGR": ("ATOXGR",),
        "AESEQ": ("ASEQ",),  # the record key of an ADAE without the SDTM sequence number
    },
    "adlb": {
        "LBTESTCD": ("PARAMCD",),
        "LBTEST": ("PARAM",),
        "LBSTRESN": ("AVAL",),
        "LBSTRESC": ("AVALC",),
        "LBSTNRLO": ("ANRLO",),
        "LBSTNRHI": ("ANRHI",),
        "LBDTC": ("ADT", "ADTM"),
        "LBBLFL": ("ABLFL",),
        "LBSEQ": ("ASEQ",),
        "VISIT": ("AVISIT",),
        "VISITNUM": ("AVISITN",),
    },
}
ADAM_TARGETS = {"adsl": "dm", "adae": "ae", "adlb": "lb"}
#: SDTM variables that stay missing when no ADaM variable stands in for them: the file then fails naming them.
NEVER_FILLED = ("RFXSTDTC", "AESTDTC", "LBTESTCD", "LBDTC", "LBSEQ")


def map_adam(domain: str, frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """An ADSL, ADAE or ADLB frame mapped onto DM, AE or LB; SDTM frames pass through unchanged.

    The ADaM variable is copied, not renamed, so the row as delivered keeps it too. A variable ADaM does not
    require (an ADSL without DTHDT) becomes an empty column rather than a missing one; those of
    :data:`NEVER_FILLED` stay missing, so the file fails naming them.
    """
    if domain not in ADAM_TO_SDTM:
        return domain, frame
    frame = frame.copy()
    for sdtm, candidates in ADAM_TO_SDTM[domain].items():
        source = next((c for c in candidates if c in frame.columns), None)
        if sdtm not in frame.columns and source is not None:
            frame[sdtm] = frame[source]
        elif sdtm not in frame.columns and sdtm not in NEVER_FILLED:
            frame[sdtm] = ""
    return ADAM_TARGETS[domain], frame


def empty_exposure() -> pd.DataFrame:
    """An EX frame without rows, for ADaM input that brings no exposure records (first/last dose from ADSL)."""
    return pd.DataFrame({"_ROW": pd.Series(dtype=int), **{c: pd.Series(dtype=object) for c in STANDARD["ex"]}})
