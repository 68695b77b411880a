"""Keyword normalisation and matching: first word or exact, NFKC, case, punctuation, emoji, numbers."""

from __future__ import annotations

import pytest

from engine.keywords import EXACT, FIRST_WORD, KeywordIndex, KeywordRule, normalise

OURS = "+15550100000"
OTHER = "+15550100099"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("demo", "DEMO"),
        ("  Demo!  ", "DEMO"),
        ("ＤＥＭＯ", "DEMO"),
        ("🎉demo🎉", "DEMO"),
        ("Demo, please.", "DEMO PLEASE"),
        ("free   trial", "FREE TRIAL"),
        ("opt-out", "OPT OUT"),
        ("straße", "STRASSE"),
        ("!!!", ""),
    ],
    ids=["lower", "spaces-punct", "full-width", "emoji", "sentence", "inner-spaces", "hyphen", "casefold", "only-punct"],
)
def test_normalise_table(body: str, expected: str):
    assert normalise(body) == expected


def index(*rules: KeywordRule) -> KeywordIndex:
    return KeywordIndex(rules)


def test_first_word_matches_sentence():
    rule = index(KeywordRule("DEMO", "demo")).match("Demo please")
    assert rule is not None and rule.sequence_name == "demo"


def test_first_word_rejects_longer_word():
    assert index(KeywordRule("DEMO", "demo")).match("demonstrate") is None


def test_first_word_rejects_later_word():
    assert index(KeywordRule("DEMO", "demo")).match("I want a demo") is None


def test_exact_matches_whole_body():
    rule = index(KeywordRule("DEMO", "demo", match=EXACT)).match(" demo! ")
    assert rule is not None


def test_exact_rejects_extra_words():
    assert index(KeywordRule("DEMO", "demo", match=EXACT)).match("demo please") is None


def test_full_width_keyword_matches():
    assert index(KeywordRule("DEMO", "demo")).match("ＤＥＭＯ ｐｌｅａｓｅ") is not None


def test_longest_keyword_wins():
    rule = index(KeywordRule("FREE", "free"), KeywordRule("FREE TRIAL", "trial")).match("free trial now")
    assert rule is not None and rule.sequence_name == "trial"


def test_number_limited_rule_wins_on_its_number():
    rules = index(KeywordRule("DEMO", "general"), KeywordRule("DEMO", "local", FIRST_WORD, frozenset({OURS})))
    assert rules.match("demo", OURS).sequence_name == "local"  # type: ignore[union-attr]
    assert rules.match("demo", OTHER).sequence_name == "general"  # type: ignore[union-attr]


def test_number_limited_rule_ignored_elsewhere():
    assert index(KeywordRule("DEMO", "local", FIRST_WORD, frozenset({OURS}))).match("demo", OTHER) is None
