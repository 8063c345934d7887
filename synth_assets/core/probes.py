"""Named probes for the usual failure modes of generated text, each answering one question per row.

A probe returns, for every row, the evidence it found (a short string) or "" when the row is
clean, so the gate can both reject the row and say *what* it saw. Probes that need to know the
task (its labels, its seeds) take a :class:`SeedProfile`.

- ``refusal``: the model declined or talked about itself ("As an AI", "I can't help with that").
- ``meta_text``: text about the answer instead of an answer ("Here are 5 examples:", "Sure!").
- ``list_marker``: list numbering or bullets left in ("1. ", "- ").
- ``label_leak``: the label's own id in the text ("weather_query").
- ``prompt_echo``: the request written back: its field names ("Number of examples:", "Answer
  with JSON") or a label's description from task.yaml, word for word.
- ``placeholder``: stand-in values no real text has ("John Doe", "[name]", "XXX", "lorem ipsum",
  "555-0100" numbers, "example.com").
- ``pii``: an e-mail address, a phone number, a payment card number (Luhn-valid) or an IBAN
  (checksum-valid): quarantined, never trained on.
- ``repetition``: a word three times in a row, or one word making up most of a longer text.
- ``wrong_script``: most letters in another writing system than the seeds'.
- ``length_outlier``: far shorter or longer than any seed (a fraction or a multiple of the
  seeds' own range).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import pandas as pd

REFUSAL = re.compile(
    r"\b(?:as an ai\b|as a language model|i(?: am|'m) (?:an ai|a language model)|"
    r"i(?: cannot| can't| can not| won't| am unable to|'m unable to) (?:help|assist|provide|create|generate|comply|do that)|"
    r"i'm sorry,? but|i apologi[sz]e)",
    re.IGNORECASE,
)
META_TEXT = re.compile(
    r"^\s*(?:sure\b[,!.]?|certainly\b[,!.]?|here (?:are|is)\b|(?:example|text|label|output)\s*\d*\s*:)", re.IGNORECASE
)
LIST_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*\u2022\u00b7])\s+")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
WORD = re.compile(r"\w+")
PROMPT_FIELDS = re.compile(
    r"number of examples\s*:|meaning of the label\s*:|answer with json|other labels of the task|^\s*label\s*:\s*\S+$",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(
    r"\b(?:john|jane) doe\b|\[(?:name|date|time|place|number|city|email|phone)\]|<(?:name|date|number)>|\bxxx+\b|"
    r"\blorem ipsum\b|\bfoo ?bar\b|\bacme (?:corp|inc)\b|\b555[-.\s]01\d\d\b|@example\.(?:com|org)\b|"
    r"\b123[-.\s]?456[-.\s]?7890\b",
    re.IGNORECASE,
)
# A description shorter than this many words is too common a phrase to call an echo.
ECHO_MIN_WORDS = 4
# A word repeated this often in a row, or making up this share of a text of at least
# REPETITION_MIN_WORDS words, is a generation loop rather than language.
REPEATS_IN_A_ROW = 3
REPETITION_SHARE = 0.5
REPETITION_MIN_WORDS = 6
# Letters outside the seeds' main writing system above this share: another language or mojibake.
FOREIGN_SCRIPT_SHARE = 0.5
# Far outside the seeds' length range: below a third of the shortest, above three times the longest.
LENGTH_OUTLIER_FACTOR = 3.0


@dataclass(frozen=True)
class SeedProfile:
    """What the probes know about a task: its label ids and its real texts' script and lengths."""

    labels: tuple[str, ...]
    script: str
    min_chars: int
    max_chars: int
    descriptions: tuple[str, ...] = ()

    @classmethod
    def of(cls, labels, seed_texts) -> SeedProfile:
        """``labels``: the task's label ids, or a mapping of them to their descriptions."""
        texts = [str(text) for text in seed_texts]
        scripts = Counter(_script(ch) for text in texts for ch in text if ch.isalpha())
        lengths = [len(text) for text in texts] or [0]
        descriptions = tuple(sorted(str(text).casefold() for text in labels.values())) if isinstance(labels, dict) else ()
        script = scripts.most_common(1)[0][0] if scripts else "LATIN"
        return cls(tuple(sorted(labels)), script, min(lengths), max(lengths), descriptions)


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _pii(text: str) -> str:
    if match := EMAIL.search(text):
        return f"e-mail address {match.group(0)!r}"
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return "payment card number"
    if (match := IBAN.search(text)) and _iban_valid(match.group(0)):
        return "IBAN"
    if match := PHONE.search(text):
        return f"phone number {match.group(0).strip()!r}"
    return ""


def _repetition(text: str) -> str:
    words = [word.casefold() for word in WORD.findall(text)]
    for start in range(len(words) - REPEATS_IN_A_ROW + 1):
        if len(set(words[start : start + REPEATS_IN_A_ROW])) == 1:
            return f"{words[start]!r} {REPEATS_IN_A_ROW} times in a row"
    if len(words) >= REPETITION_MIN_WORDS:
        word, count = Counter(words).most_common(1)[0]
        if count / len(words) > REPETITION_SHARE:
            return f"{word!r} is {count} of {len(words)} words"
    return ""


def _wrong_script(text: str, script: str) -> str:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return ""
    foreign = Counter(_script(ch) for ch in letters if _script(ch) != script)
    if sum(foreign.values()) / len(letters) > FOREIGN_SCRIPT_SHARE:
        return f"mostly {foreign.most_common(1)[0][0].lower()} letters, the seeds are {script.lower()}"
    return ""


def _label_leak(text: str, labels: tuple[str, ...]) -> str:
    # Only ids that are neither plain words nor numbers: a spam message may say "spam", a review "1"
    # and a bank customer "card arrival", but no user types "weather_query". Matched as a whole
    # token, not inside a longer one.
    folded = text.casefold()
    for label in labels:
        identifier = re.search(r"[^\w\s]|[\d_]", label) and re.search(r"[^\W\d_]", label)
        if identifier and re.search(rf"(?<![^\W_]){re.escape(label.casefold())}(?![^\W_])", folded):
            return f"contains the label id {label!r}"
    return ""


def _prompt_echo(text: str, descriptions: tuple[str, ...]) -> str:
    if match := PROMPT_FIELDS.search(text):
        return f"prompt field {match.group(0).strip()!r}"
    folded = text.casefold()
    for description in descriptions:
        if len(description.split()) >= ECHO_MIN_WORDS and description in folded:
            return f"a label description word for word: {description!r}"
    return ""


def _length_outlier(text: str, profile: SeedProfile) -> str:
    if len(text) < profile.min_chars / LENGTH_OUTLIER_FACTOR:
        return f"{len(text)} characters; the seeds have {profile.min_chars}-{profile.max_chars}"
    if len(text) > profile.max_chars * LENGTH_OUTLIER_FACTOR:
        return f"{len(text)} characters; the seeds have {profile.min_chars}-{profile.max_chars}"
    return ""


def _matching(pattern: re.Pattern, what: str):
    return lambda text, profile: f"{what} {match.group(0).strip()!r}" if (match := pattern.search(text)) else ""


PROBES = {
    "refusal": _matching(REFUSAL, "refusal"),
    "meta_text": _matching(META_TEXT, "starts with"),
    "list_marker": _matching(LIST_MARKER, "list marker"),
    "label_leak": lambda text, profile: _label_leak(text, profile.labels),
    "prompt_echo": lambda text, profile: _prompt_echo(text, profile.descriptions),
    "placeholder": _matching(PLACEHOLDER, "placeholder"),
    "pii": lambda text, profile: _pii(text),
    "repetition": lambda text, profile: _repetition(text),
    "wrong_script": lambda text, profile: _wrong_script(text, profile.script),
    "length_outlier": _length_outlier,
}


def probe(name: str, texts: pd.Series, profile: SeedProfile) -> pd.Series:
    """The evidence ``name`` finds in each text ("" where the text is clean)."""
    check = PROBES[name]
    return texts.map(lambda text: check(str(text), profile)).astype(str)


def opening_phrases(texts: pd.Series, words: int = 3, top: int = 5) -> pd.DataFrame:
    """The most common openings of a batch (a model stuck on one phrasing shows here)."""
    openings = texts.map(lambda text: " ".join(WORD.findall(str(text).casefold())[:words]))
    counts = openings[openings != ""].value_counts().head(top)
    return pd.DataFrame(
        {"opening": counts.index, "rows": counts.to_numpy(), "share": (counts / max(len(texts), 1)).round(3).to_numpy()}
    )
