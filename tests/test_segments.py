"""Encoding and segment counts: GSM-7 160/153 septets with two for ^{}[]~|€\\, UCS-2 70/67 code units."""

from __future__ import annotations

import pytest

from engine.segments import GSM7, UCS2, count_segments, describe_character, non_gsm7_characters

EXTENDED = "^{}[]~|€\\"


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("a" * 160, GSM7, 1, 160),
        ("a" * 161, GSM7, 2, 161),
        ("a" * 306, GSM7, 2, 306),
        ("a" * 307, GSM7, 3, 307),
        ("a" * 459, GSM7, 3, 459),
        ("a" * 460, GSM7, 4, 460),
        ("é£¥Ä" * 40, GSM7, 1, 160),
        ("€" * 80, GSM7, 1, 160),
        ("€" * 81, GSM7, 2, 162),
        ("a" * 159 + "[", GSM7, 2, 161),
        ("a" * 70, GSM7, 1, 70),
        ("ą" * 70, UCS2, 1, 70),
        ("ą" * 71, UCS2, 2, 71),
        ("ą" * 134, UCS2, 2, 134),
        ("ą" * 135, UCS2, 3, 135),
        ("’" + "a" * 69, UCS2, 1, 70),
        ("’" + "a" * 70, UCS2, 2, 71),
        ("🎉" * 35, UCS2, 1, 70),
        ("🎉" * 36, UCS2, 2, 72),
    ],
    ids=[
        "gsm-160", "gsm-161", "gsm-306", "gsm-307", "gsm-459", "gsm-460", "gsm-latin-160", "euro-80", "euro-81",
        "bracket-161", "gsm-short", "ucs2-70", "ucs2-71", "ucs2-134", "ucs2-135", "curly-quote-70", "curly-quote-71",
        "emoji-35", "emoji-36",
    ],
)
def test_count_segments_table(text: str, encoding: str, segments: int, units: int):
    result = count_segments(text)
    assert result.encoding == encoding
    assert result.count == segments
    assert result.units == units


@pytest.mark.parametrize("char", list(EXTENDED))
def test_extended_characters_count_two(char: str):
    assert count_segments(char).units == 2


def test_escape_pair_never_split():
    # 152 septets then a two-septet character: the pair moves whole to the second part.
    result = count_segments("a" * 152 + "€" + "a" * 153)
    assert result.units == 307
    assert result.count == 3


def test_surrogate_pair_never_split():
    result = count_segments("a" * 66 + "🎉" + "a" * 66)
    assert result.count == 3


def test_non_gsm7_characters_listed_once():
    assert non_gsm7_characters("It’s “great” 🎉 it’s") == ["’", "“", "”", "🎉"]


def test_gsm7_text_has_no_ucs2_characters():
    assert non_gsm7_characters("Hi {there} €5 [ok] ~ | ^ \\ é") == []


def test_describe_character_names_code_point():
    assert describe_character("’") == "’ (U+2019 RIGHT SINGLE QUOTATION MARK)"
