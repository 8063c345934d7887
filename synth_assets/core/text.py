"""Text normalisation shared by dedup, gate and mixing, so "the same text" means one thing.

Policy: Unicode NFKC (folds full-width and compatibility forms), case-folded, every Unicode
punctuation character removed, runs of whitespace collapsed to one space, ends stripped.
"Set an alarm!" and "set  an ALARM" normalise to the same key; "set an alarm" and
"set the alarm" do not (that is the near-duplicate stage's job).
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Every Unicode punctuation code point -> a space, for str.translate (one C pass, not a Python loop
# per character). All of them lie in the first two planes; the rest hold ideographs and private use.
_PUNCTUATION_TO_SPACE = {code: " " for code in range(0x20000) if unicodedata.category(chr(code)).startswith("P")}


def _strip_punctuation(text: str) -> str:
    return text.translate(_PUNCTUATION_TO_SPACE)


def normalize_text(text: str) -> str:
    """The normalised form used for exact-duplicate keys and shingling."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WHITESPACE.sub(" ", _strip_punctuation(folded)).strip()


def collapse_whitespace(text: str) -> str:
    """Light clean-up applied to every incoming real or generated text (meaning unchanged)."""
    return _WHITESPACE.sub(" ", text).strip()
