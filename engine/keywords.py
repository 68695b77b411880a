"""Keyword normalisation and matching: pure functions shared by the webhook path and `simulate`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FIRST_WORD = "first_word"
EXACT = "exact"
MATCH_MODES = (FIRST_WORD, EXACT)


def _is_word_char(char: str) -> bool:
    # Letters, digits and combining marks make up words; punctuation, symbols (emoji) and spaces do not.
    return unicodedata.category(char)[0] in ("L", "N", "M")


def normalise(body: str) -> str:
    """Fold a message to its comparable form: NFKC, case-folded, upper-cased, words joined by single spaces.

    "  Demo! 🎉" and "ＤＥＭＯ" both become "DEMO". Punctuation inside a word ("opt-out") separates words.
    """
    folded = unicodedata.normalize("NFKC", body).casefold()
    words: list[str] = []
    current: list[str] = []
    for char in folded:
        if _is_word_char(char):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return " ".join(words).upper()


def first_word(body: str) -> str:
    normalised = normalise(body)
    return normalised.split(" ", 1)[0] if normalised else ""


@dataclass(frozen=True)
class KeywordRule:
    """One keyword of one sequence, optionally limited to some of our numbers."""

    keyword: str  # already normalised
    sequence_name: str
    match: str = FIRST_WORD
    numbers: frozenset[str] = frozenset()  # E.164; empty: every number

    def applies_to(self, to_number: str) -> bool:
        return not self.numbers or to_number in self.numbers


class KeywordIndex:
    """Lookup from a message body to the sequence its keyword enrolls in."""

    def __init__(self, rules: Iterable[KeywordRule]) -> None:
        self._by_keyword: dict[str, list[KeywordRule]] = {}
        for rule in rules:
            self._by_keyword.setdefault(rule.keyword, []).append(rule)
        # Rules limited to a number win over catch-all rules for the same keyword.
        for rules_for_word in self._by_keyword.values():
            rules_for_word.sort(key=lambda rule: not rule.numbers)
        self._max_words = max((len(word.split()) for word in self._by_keyword), default=0)

    def match(self, body: str, to_number: str = "") -> KeywordRule | None:
        """Return the rule the body triggers on `to_number`, or None.

        The longest keyword wins, so "FREE TRIAL now" picks FREE TRIAL over FREE.
        """
        words = normalise(body).split()
        for count in range(min(len(words), self._max_words), 0, -1):
            candidate = " ".join(words[:count])
            for rule in self._by_keyword.get(candidate, ()):
                if not rule.applies_to(to_number):
                    continue
                if rule.match == EXACT and count != len(words):
                    continue
                return rule
        return None

    def keywords(self) -> Mapping[str, list[KeywordRule]]:
        return self._by_keyword
