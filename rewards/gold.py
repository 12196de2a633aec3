"""Gold utilities: real, cheap scorers of text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from goodhart.rewards.base import checked


class Sentiment:
    """VADER compound sentiment (vaderSentiment package), in [-1, 1].

    VADER is a real third-party lexicon-and-rules scorer (~40k short texts/s): a fast gold
    utility that an LM can move, with known blind spots (negation scope, emoticons)."""

    name = "sentiment"

    def __init__(self, include_prompt: bool = False):
        self.include_prompt = include_prompt
        self._vader = _analyzer()

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        texts = [p + c for p, c in zip(prompts, completions)] if self.include_prompt else completions
        vals = [self._vader.polarity_scores(t)["compound"] for t in texts]
        return checked(self.name, vals, prompts, completions)


@lru_cache(maxsize=1)
def _analyzer():
    """One VADER analyzer per process. Building one parses its lexicon (~60-100 ms), and a sweep
    builds a Scorer per point; scoring only reads the lexicon, so sharing it is safe."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


class Length:
    """Completion length in words or characters."""

    name = "length"

    def __init__(self, unit: str = "words"):
        self.unit = unit

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        vals = [len(c.split()) if self.unit == "words" else len(c) for c in completions]
        return checked(self.name, vals, prompts, completions)


class Keyword:
    """Occurrences of any of `words` (whole words) in the completion."""

    name = "keyword"

    def __init__(self, words: Sequence[str], case_sensitive: bool = False):
        flags = 0 if case_sensitive else re.IGNORECASE
        self._re = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", flags)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return checked(self.name, [len(self._re.findall(c)) for c in completions], prompts, completions)


def word_count_factory(**kwargs) -> Length:
    """The package's own example of the `goodhart.rewards` entry-point group."""
    return Length(unit="words", **kwargs)
