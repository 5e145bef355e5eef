"""The interest language a subscriber types, and its strict, friendly parser.

    state space models, Mamba, "mixture of experts", quantization -survey -"medical imaging"

- Commas (or line breaks) separate topics; each topic is matched on its own.
- ``"quoted phrases"`` must appear as a phrase.
- ``-word`` or ``-"a phrase"`` excludes papers that mention it (anywhere in the text).
- An empty text means "the top trending papers only".

A text that cannot match anything (only stop words, only exclusions, over the limits, an
unclosed quote) is an ``InterestError`` whose message says why, for the form to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from digest.matching.text import singular_acronyms

MAX_CHARS = 500
MAX_TOPICS = 20
MAX_WORDS_PER_TOPIC = 8

# Words that carry no topic on their own. Kept short on purpose: "learning" or "model" are
# weak, but they are what people type, and ranking (not parsing) weighs them.
STOP_WORDS = frozenset(
    """a an and are as at be but by for from how i in into is it its me my of on or our
    papers paper please so some such that the their them these this those to us via want
    we what when which while who with about any all more most new recent research study
    studies stuff things topic topics interested interest like vs versus""".split()
)

_SEPARATORS = re.compile(r"[,;\n\r]")
_TOKEN = re.compile(r'(-?)"([^"]*)"|(-?)([^\s"]+)|(")')
# Apostrophes may be typed straight or curly (U+2019).
_WORD = re.compile(r"[^\W_]+(?:[-'\u2019.+][^\W_]+)*", re.UNICODE)


class InterestError(ValueError):
    """The interest text cannot be used; the message is for the subscriber."""


@dataclass(frozen=True)
class Topic:
    """One comma-separated topic: its words, and the phrases that must appear verbatim."""

    text: str
    words: tuple[str, ...]
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    topics: tuple[Topic, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def is_trending_only(self) -> bool:
        """An empty profile: send the top trending papers."""
        return not self.topics

    def __str__(self) -> str:
        parts = [topic.text for topic in self.topics]
        parts += [f'-"{term}"' if " " in term else f"-{term}" for term in self.excluded]
        return ", ".join(parts)


def words_of(text: str) -> list[str]:
    """Lower-case words; an acronym's plural ("LLMs") is made singular first, while its case
    still tells it is one, as the papers' text is."""
    return [w.lower() for w in _WORD.findall(singular_acronyms(text))]


def _split_topics(text: str) -> list[str]:
    """Split on commas, semicolons and line breaks that are not inside quotes."""
    if '"' not in text:  # the common case, without a character loop
        return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char in ",;\n\r" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise InterestError('A quote is not closed: put a " at the end of the phrase.')
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _parse_topic(raw: str, excluded: list[str]) -> Topic | None:
    topic, exclusions = _parse_topic_cached(raw)
    excluded.extend(exclusions)
    return topic


@lru_cache(maxsize=65_536)
def _parse_topic_cached(raw: str) -> tuple[Topic | None, tuple[str, ...]]:
    """One topic and the exclusions written in it; cached, as many profiles share topics."""
    excluded: list[str] = []
    return _parse_one(raw, excluded), tuple(excluded)


def _parse_one(raw: str, excluded: list[str]) -> Topic | None:
    words: list[str] = []
    phrases: list[str] = []
    shown: list[str] = []
    for match in _TOKEN.finditer(raw):
        neg_phrase, phrase, neg_word, word, stray = match.groups()
        if stray:
            raise InterestError('A quote is not closed: put a " at the end of the phrase.')
        if phrase is not None:
            phrase_words = words_of(phrase)
            if not phrase_words:
                continue
            joined = " ".join(phrase_words)
            if neg_phrase:
                excluded.append(joined)
            else:
                phrases.append(joined)
                words.extend(phrase_words)
                shown.append(f'"{" ".join(phrase.split())}"')
            continue
        token_words = words_of(word)
        if neg_word and token_words:
            excluded.append(" ".join(token_words))
        elif token_words:
            words.extend(token_words)
            shown.append(word)
    if not words:
        return None
    if len(words) > MAX_WORDS_PER_TOPIC:
        raise InterestError(
            f'"{raw[:60]}" has {len(words)} words; keep each topic to {MAX_WORDS_PER_TOPIC} '
            "words or fewer and separate topics with commas."
        )
    if all(w in STOP_WORDS for w in words) and not phrases:
        raise InterestError(
            f'"{raw[:60]}" has no words that can match a paper; name a topic, a method or a '
            "field instead."
        )
    return Topic(text=" ".join(shown), words=tuple(words), phrases=tuple(phrases))


def parse_interests(text: str | None) -> Profile:
    """Parse what a subscriber typed; raises ``InterestError`` saying what to change."""
    return _parse((text or "").strip())


# A worker parses each subscriber's text twice per digest (to match, then for the mail's topic
# labels), and many subscribers share a text: profiles are immutable, so they are kept. A text
# the parser refuses raises each time (lru_cache keeps no exceptions).
@lru_cache(maxsize=4096)
def _parse(text: str) -> Profile:
    if not text:
        return Profile()
    if len(text) > MAX_CHARS:
        raise InterestError(f"Interests are limited to {MAX_CHARS} characters ({len(text)} given).")
    raw_topics = _split_topics(text)
    if len(raw_topics) > MAX_TOPICS:
        raise InterestError(
            f"At most {MAX_TOPICS} topics, please ({len(raw_topics)} given): a digest built on "
            "fewer, sharper topics is better."
        )
    excluded: list[str] = []
    topics: list[Topic] = []
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for raw in raw_topics:
        topic = _parse_topic(raw, excluded)
        if topic is not None and (topic.words, topic.phrases) not in seen:
            seen.add((topic.words, topic.phrases))
            topics.append(topic)
    if not topics:
        raise InterestError(
            "Only exclusions were given: add at least one topic to include (or leave the field "
            "empty for the top trending papers)."
        )
    return Profile(topics=tuple(topics), excluded=tuple(dict.fromkeys(excluded)))


def topic_texts(text: str | None) -> list[str]:
    """The topics of a saved profile as text; none when the parser rejects it now (its rules
    may have tightened since it was saved). For jobs that read many stored profiles."""
    try:
        return [topic.text for topic in parse_interests(text).topics]
    except InterestError:
        return []
