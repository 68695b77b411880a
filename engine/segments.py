"""SMS encodings and segment counts: GSM-7 when every character fits its alphabet, else UCS-2."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import gsm0338  # noqa: F401  (importing registers the "gsm03.38" codec)

GSM7 = "GSM-7"
UCS2 = "UCS-2"
# (single message, each part of a concatenated message), in GSM-7 septets or UTF-16 code units:
# a concatenated message spends 6 of each part's 140 bytes on the header that joins the parts.
SEGMENT_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM7 or UCS2
    count: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def gsm7_septets(char: str) -> int | None:
    """Return how many septets a character takes in GSM-7 (2 for ^{}[]~|€\\ and form feed), or None if it has none."""
    try:
        return len(char.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def non_gsm7_characters(text: str) -> list[str]:
    """Return the characters that force UCS-2, each once, in order of appearance."""
    found: list[str] = []
    for char in text:
        if gsm7_septets(char) is None and char not in found:
            found.append(char)
    return found


def describe_character(char: str) -> str:
    """Name a character for an author, such as "’ (U+2019 RIGHT SINGLE QUOTATION MARK)"."""
    name = unicodedata.name(char, "unnamed character")
    return f"{char} (U+{ord(char):04X} {name})"


def count_segments(text: str) -> Segments:
    """Return the encoding a carrier uses for `text` and how many segments it is billed as."""
    septets = [gsm7_septets(char) for char in text]
    if all(cost is not None for cost in septets):
        encoding, costs = GSM7, [cost for cost in septets if cost is not None]
    else:
        # Characters outside the Basic Multilingual Plane (most emoji) take a surrogate pair.
        encoding, costs = UCS2, [len(char.encode("utf-16-le")) // 2 for char in text]
    total = sum(costs)
    single, part = SEGMENT_LIMITS[encoding]
    if total <= single:
        return Segments(encoding, 1, total)
    # An escape pair or a surrogate pair never straddles two parts: it moves whole to the next one.
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return Segments(encoding, count, total)
