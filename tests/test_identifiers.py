"""check_identifier: the one rule for values that become file names (study ids, archive names)."""

from __future__ import annotations

import pytest

from safety_dash.identifiers import IdentifierError, check_identifier

# --- accepted, returned unchanged ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["QL1706-DEMO", "CDISCPILOT01", "T1", "a", "0", "study_2.v1", "A" * 64])
def test_check_identifier_returns_an_allowed_value_unchanged(value):
    assert check_identifier(value, "study id") == value


# --- refused, named in the sentence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "../outside",  # the fault of issue 9: a rules file loaded from outside SAFETY_DASH_RULES_DIR
        "..",
        ".hidden",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "",
        " T1",
        "T1 ",
        "T1\n",  # `$` in a pattern would let a trailing newline through; the whole value must match
        "T 1",
        "-T1",
        "_T1",
        "A" * 65,
        "Ä1",
        "T1:2",
    ],
)
def test_check_identifier_refuses_a_value_that_could_leave_its_folder(value):
    with pytest.raises(IdentifierError) as raised:
        check_identifier(value, "study id")
    assert raised.value.value == value and raised.value.what == "study id"


def test_check_identifier_names_the_value_and_what_it_is_in_one_sentence():
    with pytest.raises(ValueError) as raised:  # a ValueError: the command line prints it and exits 2
        check_identifier("../outside", "study id")
    assert str(raised.value) == (
        "study id '../outside' is not allowed: use letters, digits, '.', '_', '-' (at most 64), "
        "starting with a letter or digit"
    )


def test_check_identifier_says_what_the_value_was_meant_to_be():
    with pytest.raises(IdentifierError, match=r"^archive name 'cut 1' is not allowed: "):
        check_identifier("cut 1", "archive name")


def test_check_identifier_refuses_a_value_that_is_not_text():
    with pytest.raises(IdentifierError, match=r"^study id None is not allowed"):
        check_identifier(None, "study id")


def test_check_identifier_shortens_a_long_value_in_the_message():
    with pytest.raises(IdentifierError) as raised:
        check_identifier("x" * 10_000, "study id")
    assert len(str(raised.value)) < 250 and "x" * 80 + "...'" in str(raised.value)
