"""Turning text into matching terms: words, stems, and adjacent-word pairs.

The same function handles papers and interests, so "quantize", "quantization" and "quantized"
meet at one stem, "LLMs" (or "llms") meets "LLM", and "wider" meets "wide". Stop words are
dropped before pairs are formed, so "mixture of experts" and "mixture-of-experts" give the
same pair.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import snowballstemmer

from digest.matching.acronyms import ACRONYMS

_STEMMER = snowballstemmer.stemmer("english")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# "LLMs", "GNNs", "VLMs": an upper-case acronym with a plural s.
_ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Z0-9]*[A-Z])s\b")

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    us very was we were what when where which while who whom why will with would you your
    yours yourself via using use used based towards toward new novel approach method methods
    paper propose proposed show shows results study et al vs versus""".split()
)


# Adjectives the field compares ("wider", "deeper", "smallest"). The Snowball stemmer leaves
# comparatives and superlatives alone, so they are folded onto the adjective first. A short,
# maintained list, as with the acronyms: a rule on any "-er" word would turn "transformer"
# into "transform".
GRADABLE = """big bright broad cheap clean clear close coarse cold deep dense dim dumb early
    easy fair fast few fine flat fresh great hard heavy high hot large late lazy lean light
    long loose low narrow noisy quick rich rough safe sharp shallow short simple slim slow
    small smart smooth soft sparse steep strong thick thin tight tiny tough weak wide
    young""".split()
_IRREGULAR = {"better": "good", "best": "good", "worse": "bad", "worst": "bad"}


def _graded(adjective: str) -> list[str]:
    """The comparative and superlative of a regular adjective."""
    if adjective.endswith("e"):
        return [adjective + "r", adjective + "st"]
    if adjective.endswith("y") and adjective[-2] not in "aeiou":
        return [adjective[:-1] + "ier", adjective[:-1] + "iest"]
    consonants = "bcdfghjklmnpqrstvz"
    if (
        len(adjective) > 2
        and adjective[-1] in consonants.replace("w", "")
        and adjective[-2] in "aeiou"
        and adjective[-3] in consonants
        and adjective[-3:-1] != "ee"
    ):
        return [adjective + adjective[-1] + "er", adjective + adjective[-1] + "est"]
    return [adjective + "er", adjective + "est"]


_BASE_FORM = {form: base for base in GRADABLE for form in _graded(base)} | _IRREGULAR


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return str(_STEMMER.stemWord(_BASE_FORM.get(word, word)))


def singular_acronyms(text: str) -> str:
    """ "LLMs" -> "LLM", "GNNs" -> "GNN": upper-case acronyms with a plural s."""
    return _ACRONYM_PLURAL.sub(r"\1", text)


def words(text: str) -> list[str]:
    """Lower-case word tokens, acronym plurals made singular, stop words kept. A known acronym
    typed in lower case ("llms") is made singular too."""
    out = [w.lower() for w in _TOKEN.findall(singular_acronyms(text))]
    return [w[:-1] if w[-1] == "s" and w[:-1] in ACRONYMS else w for w in out]


def terms(text: str) -> list[str]:
    """Stemmed content words in order (stop words removed)."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]


def pairs(sequence: list[str]) -> list[str]:
    """Adjacent-term pairs, the unit of phrase and proximity matching."""
    return [f"{a} {b}" for a, b in itertools.pairwise(sequence)]


@lru_cache(maxsize=1)
def _acronym_terms() -> tuple[dict[str, tuple[tuple[str, ...], ...]], dict[tuple[str, ...], str]]:
    forward = {
        key: tuple(tuple(terms(exp)) for exp in expansions) for key, expansions in ACRONYMS.items()
    }
    backward = {seq: key for key, seqs in forward.items() for seq in seqs}
    return forward, backward


def alternatives(sequence: list[str]) -> list[list[str]]:
    """Other ways to say the same thing: an acronym spelled out, or a phrase as its acronym.

    Works on stemmed term sequences; a sequence that is exactly an acronym or exactly an
    expansion gets the other form(s). Longer topics are left alone (their other words would
    be lost by a replacement).
    """
    forward, backward = _acronym_terms()
    key = tuple(sequence)
    found: list[list[str]] = []
    if len(key) == 1 and key[0] in forward:
        found.extend(list(seq) for seq in forward[key[0]])
    if key in backward:
        found.append([backward[key]])
    for i, term in enumerate(sequence):  # an acronym inside a longer topic: "LLM agents"
        if len(sequence) > 1 and term in forward:
            for seq in forward[term]:
                found.append([*sequence[:i], *seq, *sequence[i + 1 :]])
    return found
