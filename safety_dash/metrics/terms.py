"""Dictionary terms (AEDECOD, AEBODSYS, basket members) compared as one term whatever their case (DOMAIN.md §1).

``Rash``, ``RASH`` and `` rash `` are one term: compared without regard to case and surrounding blanks, and shown in
their most frequent spelling in the cut (ties: the smallest in sort order). Events and baskets use the same key,
:func:`term_key`, so the product never disagrees with itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def term_key(text: object) -> str:
    """The comparison key of a dictionary term: surrounding blanks stripped, case folded; '' when missing."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return ""
    return str(text).strip().casefold()


def compute_canonical_terms(values: pd.Series, voters: np.ndarray | None = None) -> pd.Series:
    """Each term of ``values`` in the spelling shown for it: the most frequent spelling, among the values, of the
    terms sharing its :func:`term_key`.

    A spelling is the text stripped of surrounding blanks (`` Rash `` is spelled ``Rash``); frequency counts values
    (records), so the same input gives the same spelling. Ties go to the smallest spelling in sort order (code
    point order: ``RASH`` < ``Rash`` < ``rash``). ``voters`` (a boolean array like ``values``) restricts which
    values count towards the frequencies (e.g. only coded records); every value is still mapped. Missing and blank
    values become ''. Returns a Series of text indexed like ``values``; each distinct text is looked at once
    (factorize), so a million records cost little.
    """
    codes, uniques = pd.factorize(values, sort=False)
    voting = codes >= 0 if voters is None else (codes >= 0) & np.asarray(voters, dtype=bool)
    counts = np.bincount(codes[voting], minlength=len(uniques))
    spellings = ["" if pd.isna(item) else str(item).strip() for item in uniques]
    keys = [spelling.casefold() for spelling in spellings]
    tally: dict[str, dict[str, int]] = {}
    for spelling, key, count in zip(spellings, keys, counts, strict=True):
        if key:
            per_key = tally.setdefault(key, {})
            per_key[spelling] = per_key.get(spelling, 0) + int(count)
    shown = {key: min(per_key.items(), key=lambda item: (-item[1], item[0]))[0] for key, per_key in tally.items()}
    canonical = np.array([shown.get(key, "") for key in keys] + [""], dtype=object)  # last slot: missing (-1)
    return pd.Series(canonical[codes], index=values.index, dtype=object)
