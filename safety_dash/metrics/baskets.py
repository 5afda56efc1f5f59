"""AE baskets (AESI, immune-related AE categories): named lists of preferred terms kept as data (DOMAIN.md §3).

The caller reads the YAML file (e.g. ``safety_dash/baskets/immune_related.yaml``) and passes the parsed mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from safety_dash.metrics.exposure import check_columns
from safety_dash.metrics.terms import term_key


def parse_baskets(mapping: object) -> dict[str, frozenset[str]]:
    """Validated baskets from a parsed YAML mapping ``{basket name: [preferred term, ...]}``.

    Each basket needs a non-empty name and a non-empty list of non-empty PT texts, none listed twice (compared by
    :func:`~safety_dash.metrics.terms.term_key`, case and surrounding blanks ignored, as events are matched). A PT
    may sit in several baskets. PTs keep the spelling of the file, stripped of surrounding spaces. Raises
    ``ValueError`` with a sentence naming the basket and the problem.
    """
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(
            "The basket file must be a mapping of basket names to lists of preferred terms "
            f"(e.g. 'skin: [Rash, Pruritus]'), not {type(mapping).__name__} {mapping!r:.60}."
        )
    baskets: dict[str, frozenset[str]] = {}
    for name, terms in mapping.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"A basket name must be non-empty text, not {name!r}; name every basket.")
        label = name.strip()
        if label in baskets:
            raise ValueError(f"Basket {label!r} is defined twice; merge its lists into one.")
        if not isinstance(terms, (list, tuple)) or not terms:
            raise ValueError(
                f"Basket {label!r} must list at least one preferred term (a YAML list), not {terms!r:.60}."
            )
        seen: dict[str, str] = {}
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise ValueError(
                    f"Basket {label!r} holds {term!r}, which is not a preferred term; write each PT as text."
                )
            key = term_key(term)
            if key in seen:
                raise ValueError(f"Basket {label!r} lists {term.strip()!r} twice (as {seen[key]!r}); keep one.")
            seen[key] = term.strip()
        baskets[label] = frozenset(seen.values())
    return baskets


def derive_basket_events(events: pd.DataFrame, baskets: Mapping[str, frozenset[str]]) -> pd.DataFrame:
    """One row per event record and basket it belongs to: the event's columns plus ``BASKET``.

    An event belongs to a basket when its PT matches one of the basket's terms as dictionary terms are compared
    (:func:`~safety_dash.metrics.terms.term_key`: case and surrounding blanks ignored, on both sides). Uncoded events
    (PT ``Uncoded: <AETERM>``) match no basket until coded. Rows keep the order of ``events`` and, within an
    event, the order of ``baskets``.
    """
    check_columns(events, ("AE_ID", "PT"), "events")
    if not isinstance(baskets, Mapping):
        raise TypeError("`baskets` must be the mapping returned by parse_baskets.")
    members = pd.DataFrame(
        [(term_key(key), order, name) for order, (name, terms) in enumerate(baskets.items()) for key in terms],
        columns=["key", "order", "BASKET"],
    ).drop_duplicates(["key", "BASKET"])

    codes, uniques = pd.factorize(events["PT"], sort=False)
    unique_keys = [term_key(item) for item in uniques]
    # For each distinct PT, the baskets it belongs to; then expand to event rows through the factorize codes.
    matches = members.merge(pd.DataFrame({"key": unique_keys, "code": np.arange(len(unique_keys))}), on="key")
    per_event = pd.DataFrame({"row": np.arange(len(events)), "code": codes}).merge(matches, on="code")
    per_event = per_event.sort_values(["row", "order"], kind="stable")
    out = events.iloc[per_event["row"].to_numpy()].copy()
    out["BASKET"] = per_event["BASKET"].to_numpy()
    return out
