"""The interest language: topics, quoted phrases, exclusions, and friendly errors."""

from __future__ import annotations

import pytest

from digest.matching.interests import InterestError, parse_interests, topic_texts


def test_empty_text_means_top_trending() -> None:
    assert parse_interests("").is_trending_only
    assert parse_interests("   ").is_trending_only


@pytest.mark.parametrize(
    ("text", "topics", "phrases", "excluded"),
    [
        (
            "state space models, Mamba, quantization",
            [("state", "space", "models"), ("mamba",), ("quantization",)],
            [],
            [],
        ),
        (
            '"mixture of experts" -survey',
            [("mixture", "of", "experts")],
            ["mixture of experts"],
            ["survey"],
        ),
        (
            'LLM -"medical imaging"; diffusion\nGNN',
            [("llm",), ("diffusion",), ("gnn",)],
            [],
            ["medical imaging"],
        ),
        ("Mamba, mamba", [("mamba",)], [], []),
        ("don\u2019t stop, GPT-4.5", [("don\u2019t", "stop"), ("gpt-4.5",)], [], []),
    ],
)
def test_topics_phrases_and_exclusions(
    text: str, topics: list[tuple[str, ...]], phrases: list[str], excluded: list[str]
) -> None:
    profile = parse_interests(text)
    assert [t.words for t in profile.topics] == topics
    assert [p for t in profile.topics for p in t.phrases] == phrases
    assert list(profile.excluded) == excluded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("the, of, and", "no words that can match"),
        ("-survey, -review", "Only exclusions"),
        ('"state space', "quote is not closed"),
        ("x" * 501, "limited to 500"),
        (", ".join(f"t{i}" for i in range(21)), "At most 20 topics"),
        ("one two three four five six seven eight nine", "8 words or fewer"),
    ],
)
def test_profiles_that_cannot_match_say_why(text: str, message: str) -> None:
    with pytest.raises(InterestError, match=message):
        parse_interests(text)


def test_profile_prints_back_in_the_same_language() -> None:
    profile = parse_interests('Mamba, "state space model" -survey -"medical imaging"')
    assert str(profile) == 'Mamba, "state space model", -survey, -"medical imaging"'


def test_topic_texts_of_stored_profiles_are_empty_where_the_parser_now_refuses() -> None:
    assert topic_texts('Mamba, "state space models", -survey') == [
        "Mamba",
        '"state space models"',
    ]
    assert topic_texts("") == []
    assert topic_texts("-survey") == []  # only an exclusion: refused today
    assert topic_texts("x" * 600) == []
