"""The offline generator: new labelled texts recombined from a label's own seeds.

Every operator below keeps the label correct by construction: it only moves words *within*
one label's seeds, swaps a slot value (a number, a weekday, a first name) for another value of
the same slot, or adds or drops framing that the seeds themselves show to be shared by many
labels. An example is one seed passed through one to three operators; the operators it went
through are its ``template_id`` and the seeds it drew on are its ``seed_ids``.

Operators:
- ``splice``: the start of one seed joined to the end of another seed of the same label at a
  word they share ("wake me up at six" + "set an alarm at noon please" -> "wake me up at noon
  please").
- ``crossover``: the first sentences of a multi-sentence seed followed by the last sentences of
  another seed of the same label (documents, reviews, jokes: text longer than one utterance).
- ``slot``: a slot value swapped for another of the same slot (built-in English lexicons for
  numbers, times, days, months, parts of the day, colours, cities, currencies; first names).
- ``reframe``: the seed's opening or closing phrase replaced with another label-neutral one.
  Label-neutral phrases are mined from the seeds (openers and closers found across many
  labels) plus a short built-in list of polite framings.
- ``label_word``: a word of this label's seeds inserted next to a word it follows in them.
- ``describe``: a word that only this label's description in ``task.yaml`` uses inserted
  ("lights", "muted"): the task author's words reach the training data.
- ``drop``: one function word left out (as people do when typing to an assistant).
- ``swap``: two adjacent words exchanged when both are slot values or function words.
- ``inflect``: a common noun swapped between singular and plural ("alarm" -> "alarms"), from a
  lexicon built offline from WordNet (``scripts/build_lexicons.py``); ``describe`` also inserts
  such forms of description words.

Label safety of the lexicon operators: a replacement or inserted word is never one that other
labels' seeds use and this label's seeds don't (``SeedBank.foreign_words``), function words and
slot values are never replaced, and negations / direction words (``PROTECTED_WORDS``) are never
inserted; the lexicons leave out polarity and direction words ("on", "off", "up", "more").

Novelty: an example whose character shingles overlap a seed it was made from as much as the
near-duplicate stage's threshold is drawn again, as an exact copy is. One inserted word leaves a
three-sentence seed a near copy, which the ``deduplicated`` stage would reject as ``copies_seed``;
on long text the generator therefore lands on the operators that make new text (``crossover``,
``splice``) instead of spending the batch on rows it will lose.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from faker.providers.person.en_US import Provider as _FakerPerson

from synth_assets.core.text import normalize_text

TEMPLATE_VERSION = "2026.12.1"
MAX_OPERATORS = 3
TRIES_PER_EXAMPLE = 12
SENTENCE_ENDS = {".", "!", "?"}
# A phrase that opens or closes seeds of at least this share of labels is framing, not meaning.
NEUTRAL_PHRASE_LABEL_SHARE = 0.08
NEUTRAL_PHRASE_MIN_LABELS = 3
# Seeds whose words are at least this share English function words are English (English text runs
# at 30-50%; other languages share a few, such as "a", "me", "no"). Only English seeds get the
# built-in English framings and description words the seeds do not use.
ENGLISH_FUNCTION_WORD_SHARE = 0.15
# A description word used by at least this share of labels ("user", "wants") says nothing about one label.
DESCRIPTION_GENERIC_SHARE = 0.1
# Words of how descriptions are written, not of what a label means: never inserted by ``describe``.
DESCRIPTION_META_WORDS = set(
    [
        "user",
        "users",
        "customer",
        "customers",
        "person",
        "someone",
        "people",
        "message",
        "messages",
        "text",
        "texts",
        "utterance",
        "request",
        "says",
        "say",
        "tells",
        "tell",
        "asks",
        "ask",
        "wants",
        "want",
        "makes",
        "make",
        "gives",
        "give",
        "something",
        "anything",
        "example",
        "such",
        "as",
        "them",
        "they",
        "it",
        "itself",
        "themselves",
        "one",
        "ones",
        "which",
        "from",
        "between",
        "about",
        "into",
        "onto",
        "than",
        "then",
    ]
)

# Built by scripts/build_lexicons.py from WordNet 3.0 (licence beside it): singular and plural of
# common nouns ("alarm alarms").
INFLECTION_LEXICON = Path(__file__).with_name("lexicons") / "noun_forms.json.gz"
# How often ``describe`` inserts another inflection of the description word ("alarms" for "alarm").
DESCRIBE_INFLECT_SHARE = 0.5

# A word keeps its apostrophes and hyphens ("don't", "first-degree"); a run of other symbols is one token ('."', "--").
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]+")
_CLOSING = tuple(",.!?;:%)]}”")  # a new token starting with one of these follows without a space
_OPENING = tuple("([{$“")  # a new token after one of these follows without a space

_NUMBER_WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "hundred",
]
SLOT_LEXICONS: dict[str, list[str]] = {
    "number": _NUMBER_WORDS + [str(n) for n in (*range(1, 13), 15, 20, 25, 30, 45, 50, 100)],
    "meridiem": ["am", "pm"],
    "weekday": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "month": ["january", "february", "march", "april", "june", "july", "august", "september", "october", "november", "december"],
    "day_part": ["morning", "afternoon", "evening", "night"],
    "relative_day": ["today", "tomorrow", "tonight"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white", "violet"],
    "city": [
        "london",
        "paris",
        "berlin",
        "madrid",
        "rome",
        "tokyo",
        "delhi",
        "mumbai",
        "chicago",
        "boston",
        "seattle",
        "toronto",
        "sydney",
        "dublin",
        "amsterdam",
        "vienna",
        "prague",
        "moscow",
        "beijing",
        "dubai",
        "singapore",
        "barcelona",
        "lisbon",
        "denver",
        "atlanta",
    ],
    "currency": ["dollar", "dollars", "euro", "euros", "pound", "pounds", "yen", "rupee", "rupees"],
}
# Words that are also first names in Faker's list but mean something else in requests.
_NOT_NAMES = set(
    [
        "will",
        "may",
        "june",
        "april",
        "august",
        "mark",
        "bill",
        "rose",
        "joy",
        "grace",
        "hope",
        "faith",
        "sunny",
        "summer",
        "autumn",
        "dawn",
        "art",
        "frank",
        "gene",
        "guy",
        "jack",
        "jay",
        "ken",
        "max",
        "miles",
        "nick",
        "pat",
        "ray",
        "rich",
        "rob",
        "sandy",
        "tom",
        "victor",
        "chase",
        "hunter",
        "page",
        "carol",
        "brook",
        "lane",
        "dale",
        "glen",
        "holly",
        "ivy",
        "iris",
        "pearl",
        "ruby",
        "amber",
        "crystal",
        "star",
    ]
)
FIRST_NAMES = sorted({name.lower() for name in _FakerPerson.first_names} - _NOT_NAMES)
SLOT_LEXICONS["first_name"] = FIRST_NAMES[::3]  # a spread of names, not 700 near-identical choices
_SLOT_OF = {word: slot for slot, words in SLOT_LEXICONS.items() for word in words}
_SLOT_OF.update({name: "first_name" for name in FIRST_NAMES})

_FUNCTION_WORDS = set(
    [
        "a",
        "an",
        "the",
        "to",
        "for",
        "of",
        "in",
        "on",
        "at",
        "my",
        "me",
        "i",
        "you",
        "your",
        "please",
        "can",
        "could",
        "would",
        "will",
        "do",
        "does",
        "is",
        "it",
        "this",
        "that",
        "with",
        "and",
        "or",
        "some",
        "any",
        "be",
        "are",
        "what",
        "how",
        "up",
    ]
)
# Words whose removal or replacement can flip a label (sentiment, commands, comparisons).
PROTECTED_WORDS = set(
    [
        "not",
        "no",
        "never",
        "nothing",
        "nobody",
        "none",
        "nor",
        "neither",
        "without",
        "cannot",
        "cant",
        "can't",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "wasn't",
        "aren't",
        "won't",
        "wouldn't",
        "shouldn't",
        "couldn't",
        "n't",
        "but",
        "on",
        "off",
        "up",
        "down",
        "in",
        "out",
        "more",
        "less",
        "most",
        "least",
        "too",
        "very",
        "only",
        "yes",
    ]
)
_BUILT_IN_OPENERS = [
    ("please",),
    ("can", "you"),
    ("could", "you"),
    ("would", "you"),
    ("i", "want", "you", "to"),
    ("i", "need", "you", "to"),
    ("hey",),
    ("ok",),
]
_BUILT_IN_CLOSERS = [("please",), ("now",), ("for", "me"), ("thanks",)]


class Token(str):
    """A token of a seed that remembers whether a space came before it there, so text the operators
    leave as it was joins back as it was ("7:30", 'he said "stop."', "-- Oscar Wilde")."""

    __slots__ = ("spaced",)

    def __new__(cls, text: str, spaced: bool) -> Token:
        token = super().__new__(cls, text)
        token.spaced = spaced
        return token


def tokenize(text: str) -> list[Token]:
    # A seed's first token counts as spaced: moved behind other words, it is a word of its own.
    return [Token(match.group(), match.start() == 0 or text[match.start() - 1].isspace()) for match in _TOKEN.finditer(text)]


def _like(token: str, text: str) -> str:
    """``text`` taking ``token``'s place, with its spacing."""
    return Token(text, token.spaced) if isinstance(token, Token) else text


def _space_before(token: str, previous: str) -> bool:
    if isinstance(token, Token) and (isinstance(previous, Token) or not _is_word(token)):
        return token.spaced
    # A word an operator brought in (or a seed's word after one): spaced unless punctuation says otherwise.
    return not token.startswith(_CLOSING) and not previous.endswith(_OPENING)


def detokenize(tokens: list[str]) -> str:
    pieces = [tokens[0]] if tokens else []
    for previous, token in zip(tokens, tokens[1:]):
        pieces.append(" " + token if _space_before(token, previous) else token)
    return "".join(pieces).strip()


def _is_word(token: str) -> bool:
    return any(ch.isalnum() for ch in token)


@dataclass
class SeedBank:
    """What the operators may draw on, learned from one batch's seeds."""

    by_label: dict[str, list[tuple[str, list[str]]]]  # label -> [(seed_id, tokens)]
    openers: list[tuple[str, ...]]
    closers: list[tuple[str, ...]]
    followers: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # label -> word -> next words
    # label -> (word, next word) -> the seeds that have the pair: ``label_word`` draws on them
    follower_seeds: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)
    description_words: dict[str, list[str]] = field(default_factory=dict)  # label -> words only its description has
    foreign_words: dict[str, set[str]] = field(default_factory=dict)  # label -> words other labels' seeds use, it doesn't

    @classmethod
    def from_seeds(cls, seeds: pd.DataFrame, label_descriptions: dict[str, str]) -> SeedBank:
        by_label: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        for seed_id, text, label in zip(seeds["seed_id"], seeds["text"], seeds["label"]):
            by_label[str(label)].append((str(seed_id), tokenize(str(text))))
        english = _looks_english(by_label)
        openers, closers = _neutral_phrases(by_label, english)
        followers: dict[str, dict[str, list[str]]] = {}
        follower_seeds: dict[str, dict[tuple[str, str], list[str]]] = {}
        for label, rows in by_label.items():
            pairs: dict[str, set[str]] = defaultdict(set)
            sources: dict[tuple[str, str], set[str]] = defaultdict(set)
            for seed_id, tokens in rows:
                words = [t.lower() for t in tokens]
                for left, right in zip(words, words[1:]):
                    if _is_word(left) and _is_word(right):
                        pairs[left].add(right)
                        sources[(left, right)].add(seed_id)
            followers[label] = {word: sorted(nexts) for word, nexts in sorted(pairs.items())}
            follower_seeds[label] = {pair: sorted(ids) for pair, ids in sources.items()}
        vocab = {label: {t.lower() for _, tokens in rows for t in tokens if _is_word(t)} for label, rows in by_label.items()}
        everywhere = set().union(*vocab.values()) if vocab else set()
        foreign = {label: everywhere - words for label, words in vocab.items()}
        description_words = _description_words(label_descriptions)
        if not english:  # an English description ("food") must not land in a Russian seed
            description_words = {label: [w for w in words if w in everywhere] for label, words in description_words.items()}
        return cls(dict(sorted(by_label.items())), openers, closers, followers, follower_seeds, description_words, foreign)


def _looks_english(by_label: dict[str, list[tuple[str, list[str]]]]) -> bool:
    words = [t.lower() for rows in by_label.values() for _, tokens in rows for t in tokens if _is_word(t)]
    return bool(words) and sum(word in _FUNCTION_WORDS for word in words) / len(words) >= ENGLISH_FUNCTION_WORD_SHARE


def _description_words(descriptions: dict[str, str]) -> dict[str, list[str]]:
    """Per label, the words of its description that few other descriptions use ("lights", "off")."""
    # Words with letters only: a description that is a bare number (label "0" described as "0") says nothing.
    tokenized = {label: [t.lower() for t in tokenize(text) if t.isalpha()] for label, text in descriptions.items()}
    spread = Counter(word for words in tokenized.values() for word in set(words))
    generic = {word for word, labels in spread.items() if labels >= max(3, DESCRIPTION_GENERIC_SHARE * len(descriptions))}
    # Negations and other protected words are never inserted: "not" in a random spot flips a review.
    dropped = generic | _FUNCTION_WORDS | DESCRIPTION_META_WORDS | PROTECTED_WORDS
    return {label: sorted(set(words) - dropped) for label, words in sorted(tokenized.items())}


def _neutral_phrases(by_label: dict[str, list[tuple[str, list[str]]]], english: bool) -> tuple[list[tuple], list[tuple]]:
    """Opening and closing phrases (1-3 words) that seeds of many labels share; the built-in English ones for English seeds."""
    needed = max(NEUTRAL_PHRASE_MIN_LABELS, int(NEUTRAL_PHRASE_LABEL_SHARE * len(by_label)))
    starts: dict[tuple, set[str]] = defaultdict(set)
    ends: dict[tuple, set[str]] = defaultdict(set)
    for label, rows in by_label.items():
        for _, tokens in rows:
            words = [t.lower() for t in tokens if _is_word(t)]
            for size in (1, 2, 3):
                if len(words) > size + 1:
                    starts[tuple(words[:size])].add(label)
                    ends[tuple(words[-size:])].add(label)
    # "off" ends seeds of many labels, yet "shuffle off" is not "shuffle": no protected word is framing.
    neutral = lambda phrase, labels: len(labels) >= needed and not set(phrase) & PROTECTED_WORDS  # noqa: E731
    mined_openers = [phrase for phrase, labels in sorted(starts.items()) if neutral(phrase, labels)]
    mined_closers = [phrase for phrase, labels in sorted(ends.items()) if neutral(phrase, labels)]
    openers = sorted(set(mined_openers) | set(_BUILT_IN_OPENERS if english else ()))
    closers = sorted(set(mined_closers) | set(_BUILT_IN_CLOSERS if english else ()))
    return openers, closers


def _strip_phrase(words: list[str], phrases: list[tuple[str, ...]], at_start: bool) -> list[str]:
    """``words`` without the longest neutral phrase at its start (or end), if it has one."""
    lowered = [w.lower() for w in words]
    for phrase in sorted(phrases, key=len, reverse=True):
        size = len(phrase)
        if len(words) > size + 1 and tuple(lowered[:size] if at_start else lowered[-size:]) == phrase:
            return words[size:] if at_start else words[:-size]
    return words


def _trailing_punctuation(tokens: list[str]) -> tuple[list[str], list[str]]:
    end = len(tokens)
    while end > 0 and not _is_word(tokens[end - 1]):
        end -= 1
    return tokens[:end], tokens[end:]


def _lend(used: list[str], seed_ids: list[str]) -> None:
    """Record seeds that lent the example text (its ``seed_ids``), each once."""
    used.extend(seed_id for seed_id in seed_ids if seed_id not in used)


def _partners(tokens, label, bank, rng, tried: int = 6) -> list[tuple[str, list[str]]]:
    """Up to ``tried`` other seeds of ``label`` in random order: what ``splice`` and ``crossover`` join ``tokens`` to."""
    partners = [(seed_id, other) for seed_id, other in bank.by_label[label] if other != tokens]
    rng.shuffle(partners)
    return partners[:tried]


def _splice(tokens, label, bank, rng, used):
    lowered = [t.lower() for t in tokens]
    for seed_id, other in _partners(tokens, label, bank, rng):
        other_lowered = [t.lower() for t in other]
        shared = [
            (i, j)
            for i, word in enumerate(lowered)
            if _is_word(word)
            for j, other_word in enumerate(other_lowered)
            if other_word == word and (i, j) != (0, 0) and (i, j) != (len(tokens) - 1, len(other) - 1)
        ]
        if shared:
            i, j = rng.choice(shared)
            _lend(used, [seed_id])
            return tokens[:i] + other[j:]
    return None


def _sentences(tokens: list[str]) -> list[list[str]]:
    """``tokens`` cut after each run of punctuation that holds a full stop, ! or ? and is followed by a word."""
    sentences, start, i = [], 0, 0
    while i < len(tokens):
        if not _is_word(tokens[i]) and SENTENCE_ENDS & set(tokens[i]):
            end = i
            while end + 1 < len(tokens) and not _is_word(tokens[end + 1]):
                end += 1
            if end + 1 < len(tokens):
                sentences.append(tokens[start : end + 1])
                start = end + 1
            i = end
        i += 1
    return [*sentences, tokens[start:]] if start < len(tokens) else sentences


def _crossover(tokens, label, bank, rng, used):
    own = _sentences(tokens)
    if len(own) < 2:
        return None
    for seed_id, other in _partners(tokens, label, bank, rng):
        theirs = _sentences(other)
        if len(theirs) < 2:
            continue
        head, tail = own[: rng.randint(1, len(own) - 1)], theirs[rng.randint(1, len(theirs) - 1) :]
        _lend(used, [seed_id])
        return [token for sentence in head + tail for token in sentence]
    return None


def _slot(tokens, label, bank, rng, used):
    # "am" / "pm" are times only after a number ("am i free" is a verb).
    positions = [
        i
        for i, t in enumerate(tokens)
        if t.lower() in _SLOT_OF
        and (_SLOT_OF[t.lower()] != "meridiem" or (i > 0 and _SLOT_OF.get(tokens[i - 1].lower()) == "number"))
    ]
    if not positions:
        return None
    position = rng.choice(positions)
    slot = _SLOT_OF[tokens[position].lower()]
    choices = [w for w in SLOT_LEXICONS[slot] if w != tokens[position].lower()]
    replacement = rng.choice(choices)
    if tokens[position][:1].isupper():
        replacement = replacement.capitalize()
    return tokens[:position] + [_like(tokens[position], replacement)] + tokens[position + 1 :]


def _reframe(tokens, label, bank, rng, used):
    body, punctuation = _trailing_punctuation(tokens)
    at_start = rng.random() < 0.5
    phrases = bank.openers if at_start else bank.closers
    if not phrases:  # seeds in another language with no framing shared across labels
        return None
    core = _strip_phrase(body, phrases, at_start=at_start)
    result = list(rng.choice(phrases)) + core if at_start else core + list(rng.choice(phrases))
    return result + punctuation if result != body else None


def _label_word(tokens, label, bank, rng, used):
    followers = bank.followers.get(label, {})
    spots = [
        (i, nxt)
        for i, t in enumerate(tokens[:-1])
        for nxt in followers.get(t.lower(), [])
        if nxt != tokens[i + 1].lower() and nxt not in (x.lower() for x in tokens)
    ]
    if not spots:
        return None
    i, word = rng.choice(spots)
    # The seeds that have the pair lent the example a piece of their text: they are among its seed_ids,
    # so the validation folds leave the example out where those seeds are scored.
    _lend(used, bank.follower_seeds[label][(tokens[i].lower(), word)])
    return tokens[: i + 1] + [word] + tokens[i + 1 :]


def _describe(tokens, label, bank, rng, used):
    present = {t.lower() for t in tokens}
    words = [word for word in bank.description_words.get(label, []) if word not in present]
    if not words:
        return None
    body, punctuation = _trailing_punctuation(tokens)
    position = rng.randint(0, len(body))
    word = rng.choice(words)
    foreign = bank.foreign_words.get(label, set())
    variants = [v for v in inflection_lexicon(INFLECTION_LEXICON).get(word, ()) if v not in foreign]
    if variants and rng.random() < DESCRIBE_INFLECT_SHARE:
        word = rng.choice(variants)
    return body[:position] + [word] + body[position:] + punctuation


def _drop(tokens, label, bank, rng, used):
    positions = [i for i, t in enumerate(tokens) if t.lower() in _FUNCTION_WORDS]
    if len([t for t in tokens if _is_word(t)]) < 4 or not positions:
        return None
    position = rng.choice(positions)
    return tokens[:position] + tokens[position + 1 :]


def _swap(tokens, label, bank, rng, used):
    movable = lambda t: t.lower() in _SLOT_OF or t.lower() in _FUNCTION_WORDS  # noqa: E731
    positions = [i for i in range(len(tokens) - 1) if movable(tokens[i]) and movable(tokens[i + 1])]
    positions = [i for i in positions if tokens[i].lower() != tokens[i + 1].lower()]
    if not positions:
        return None
    i = rng.choice(positions)
    return tokens[:i] + [tokens[i + 1], tokens[i]] + tokens[i + 2 :]


@functools.lru_cache(maxsize=4)
def inflection_lexicon(path: Path = INFLECTION_LEXICON) -> dict[str, tuple[str, ...]]:
    """Surface form -> the other forms of its word (loaded once per process); empty when missing."""
    if not path.exists():
        return {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        families = json.load(handle)["families"]
    return {form: tuple(f for f in family if f != form) for family in families for form in family}


def _inflect(tokens, label, bank, rng, used):
    lexicon = inflection_lexicon(INFLECTION_LEXICON)
    foreign = bank.foreign_words.get(label, set())
    spots = []
    for i, token in enumerate(tokens):
        word = token.lower()
        if word in _FUNCTION_WORDS or word in _SLOT_OF:
            continue
        choices = [s for s in lexicon.get(word, ()) if s not in foreign]
        if choices:
            spots.append((i, choices))
    if not spots:
        return None
    i, choices = rng.choice(spots)
    replacement = rng.choice(choices)
    if tokens[i][:1].isupper():
        replacement = replacement.capitalize()
    return tokens[:i] + [_like(tokens[i], replacement)] + tokens[i + 1 :]


OPERATORS = {
    "splice": _splice,
    "crossover": _crossover,
    "slot": _slot,
    "reframe": _reframe,
    "label_word": _label_word,
    "describe": _describe,
    "drop": _drop,
    "swap": _swap,
    "inflect": _inflect,
}
# How often each operator is tried by default (a task may set its own: generation.operators).
# Measured on HWU64 (bench/seed_draws.py, 5 draws): additive, meaning-keeping edits (description
# words, word forms, neutral framing) carry the gain; edits that cut or reorder seeds (slot,
# drop, swap) did not help there, so they start at 0 for a task to turn on where they help
# (entity-heavy text). Swapping words for WordNet synonyms measured negative (wrong senses:
# "alarm" -> "dismay") and was left out.
OPERATOR_WEIGHTS = {
    "describe": 5,
    "inflect": 3,
    "reframe": 2,
    "splice": 1,
    "crossover": 2,
    "label_word": 1,
    "slot": 0,
    "drop": 0,
    "swap": 0,
}


def _one_example(label: str, bank: SeedBank, rng: random.Random, weights: dict[str, float]) -> tuple[str, str, list[str]] | None:
    seed_id, tokens = rng.choice(bank.by_label[label])
    used = [seed_id]
    applied = []
    names = list(OPERATORS)
    chances = [weights.get(name, 0) for name in names]
    for _ in range(rng.randint(1, MAX_OPERATORS)):
        name = rng.choices(names, chances)[0]
        result = OPERATORS[name](tokens, label, bank, rng, used)
        if result and result != tokens and any(_is_word(t) for t in result):
            tokens = result
            applied.append(name)
    if not applied:
        return None
    return detokenize(tokens), "+".join(applied), used


def shingles(text: str, size: int) -> frozenset[str]:
    """The character ``size``-shingles of the normalised text, as the near-duplicate stage counts them
    (a text shorter than ``size`` is one shingle)."""
    normalized = normalize_text(text)
    if len(normalized) <= size:
        return frozenset((normalized,))
    return frozenset(normalized[i : i + size] for i in range(len(normalized) - size + 1))


def _jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    return len(left & right) / len(left | right)


def generate_template_rows(
    seeds: pd.DataFrame,
    label_descriptions: dict[str, str],
    *,
    attempts: dict[str, int],
    rng_seed: int,
    weights: dict[str, float] | None = None,
    near_copy_threshold: float = 0.8,
    shingle_chars: int = 5,
    avoid: Iterable[str] = (),
) -> pd.DataFrame:
    """``attempts[label]`` examples for every label of ``seeds``: text, label, template_id, seed_ids, sample_index.

    ``seeds`` has ``seed_id, text, label``. The same seeds and ``rng_seed`` give the same rows.
    An example equal to a seed, to an earlier example or to one of the texts in ``avoid`` (what
    a top-up round must not repeat), or whose ``shingle_chars``-shingles overlap a seed it was
    made from by a Jaccard of ``near_copy_threshold`` or more (the task's near-duplicate
    settings), is drawn again (up to a bound), so the attempts are new texts wherever the seeds
    allow it.
    """
    bank = SeedBank.from_seeds(seeds, label_descriptions)
    seen = {normalize_text(str(text)) for text in [*seeds["text"], *avoid]}
    seed_shingles = {seed_id: shingles(str(text), shingle_chars) for seed_id, text in zip(seeds["seed_id"], seeds["text"])}

    def is_new(example: tuple[str, str, list[str]] | None) -> bool:
        if example is None or normalize_text(example[0]) in seen:
            return False
        made = shingles(example[0], shingle_chars)
        return all(_jaccard(made, seed_shingles[seed_id]) < near_copy_threshold for seed_id in example[2])

    rows = []
    for label in sorted(label_descriptions):
        if label not in bank.by_label:
            continue
        rng = random.Random(f"{rng_seed}:{label}")
        for index in range(attempts.get(label, 0)):
            example = None
            for _ in range(TRIES_PER_EXAMPLE):
                example = _one_example(label, bank, rng, weights or OPERATOR_WEIGHTS)
                if is_new(example):
                    break
            if example is None:
                seed_id, tokens = bank.by_label[label][index % len(bank.by_label[label])]
                example = (detokenize(tokens), "copy", [seed_id])
            text, template_id, seed_ids = example
            seen.add(normalize_text(text))
            rows.append({"text": text, "label": label, "template_id": template_id, "seed_ids": seed_ids, "sample_index": index})
    return pd.DataFrame(rows, columns=["text", "label", "template_id", "seed_ids", "sample_index"])
