"""Carrier-reserved words: opt-out, opt-in and help keywords, in normalised form (see engine.keywords.normalise).

No sequence may use them as keywords or reply words, except YES as a reply word: YES only opts a
contact back in when they are opted out.
"""

from __future__ import annotations

# CTIA and the US carriers' standard opt-out words.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"})
# Words that withdraw consent even inside a short sentence ("please stop texting me"), per the FCC's 2025
# revocation rule; CANCEL, END and QUIT are too common in ordinary sentences to count there.
OPT_OUT_IN_SENTENCE_WORDS = frozenset({"STOP", "UNSUBSCRIBE", "REVOKE", "OPT OUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
OPT_IN_WHEN_OPTED_OUT = frozenset({"YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})

RESERVED_KEYWORDS = OPT_OUT_WORDS | OPT_IN_WORDS | OPT_IN_WHEN_OPTED_OUT | HELP_WORDS
RESERVED_REPLY_WORDS = OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS
