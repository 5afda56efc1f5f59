"""The order cohorts are shown in: dose levels by dose ("0.3 mg/kg" before "1 mg/kg" before "10 mg/kg"), names
alphabetically, the whole population (ALL) first."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from safety_dash.metrics.rates import ALL_GROUP

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def natural_key(text: str) -> list:
    """Sort key that orders numbers inside text by value ("0.3 mg/kg" < "5 mg/kg" < "10 mg/kg")."""
    parts = _NUMBER.split(str(text))
    return [(0, float(part)) if index % 2 else (1, part.casefold()) for index, part in enumerate(parts)]


def order_groups(groups) -> list[str]:
    """Cohorts in natural order, with ALL first when present."""
    names = sorted({g for g in groups if g != ALL_GROUP}, key=natural_key)
    return ([ALL_GROUP] if ALL_GROUP in set(groups) else []) + names


def natural_rank(values: pd.Series) -> pd.Series:
    """Integer ranks of ``values`` (texts, few distinct ones: cohorts) in natural order; missing values last."""
    texts = values.astype(object).where(values.notna(), None)
    distinct = sorted({v for v in texts if v is not None}, key=natural_key)
    rank = {v: i for i, v in enumerate(distinct)}
    return pd.Series(
        np.array([rank.get(v, len(distinct)) if v is not None else len(distinct) for v in texts], dtype=np.int64),
        index=values.index,
    )
