"""Seeded generator of short English-like review sentences.

The built-in base model (`goodhart.pipeline.base.tiny_model`) is pretrained on this text, and its
prompts come from the same generator. Three properties matter downstream:

* sentiment spread: positive, negative and neutral words, intensifiers ("very", "so"),
  dampeners ("slightly") and negations ("was not") so that VADER's compound score of
  model samples covers [-1, 1] instead of sitting at 0;
* variety: a dozen sentence shapes, ~40 subjects, clauses joined by "and" / "but", lines
  of 1-3 sentences, so samples are not copies of each other;
* a neutral filler word, `FILLER` ("then"), in ~15% of sentences (once or twice). It is in
  neither VADER's lexicon nor its booster list, so a "count the word" feature reward can be
  discovered and exploited by a policy without moving the sentiment utility.

All text is lowercase ASCII. Everything is a pure function of `(n, seed)`.
"""

from __future__ import annotations

import random

FILLER = "then"
"""Neutral filler word planted in a modest fraction of sentences (see module docstring)."""

FILLER_RATE = 0.15
"""Probability that a sentence carries the filler (1 time w.p. 0.75, 2 times w.p. 0.25)."""

# ---------------------------------------------------------------- vocabulary
# (subject, pronoun): the pronoun is reused in a second clause ("... and it was ...").
THINGS = (
    "the movie",
    "the film",
    "the book",
    "the food",
    "the hotel",
    "the weather",
    "the service",
    "the game",
    "the concert",
    "the show",
    "the trip",
    "the coffee",
    "the music",
    "the room",
    "the train",
    "the new album",
    "this phone",
    "this laptop",
    "this place",
    "this song",
    "the restaurant",
    "the class",
    "the wedding",
    "the garden",
    "my car",
    "my new job",
    "our flat",
    "the bus",
    "the museum",
    "the meal",
)
PEOPLE = (
    ("my neighbour", "he"),
    ("my brother", "he"),
    ("my sister", "she"),
    ("our teacher", "she"),
    ("the waiter", "he"),
    ("the driver", "he"),
    ("my cousin", "she"),
    ("the doctor", "she"),
    ("her boss", "he"),
    ("his mother", "she"),
    ("the manager", "he"),
    ("the old man", "he"),
)
SPEAKERS = (
    "my neighbour",
    "my cousin",
    "my mum",
    "our teacher",
    "everyone",
    "the reviewer",
    "my brother",
    "she",
    "he",
    "the waiter",
    "my sister",
    "the manager",
)

POSITIVE_ADJ = (
    "good",
    "great",
    "wonderful",
    "amazing",
    "lovely",
    "nice",
    "excellent",
    "fantastic",
    "pleasant",
    "beautiful",
    "brilliant",
    "charming",
    "delightful",
    "perfect",
    "friendly",
    "cheerful",
    "superb",
    "enjoyable",
)
NEGATIVE_ADJ = (
    "bad",
    "terrible",
    "awful",
    "horrible",
    "boring",
    "ugly",
    "sad",
    "disappointing",
    "poor",
    "dreadful",
    "annoying",
    "rude",
    "broken",
    "painful",
    "miserable",
    "nasty",
    "dull",
    "useless",
)
NEUTRAL_ADJ = (
    "long",
    "short",
    "new",
    "old",
    "quiet",
    "small",
    "big",
    "late",
    "early",
    "loud",
    "simple",
    "cold",
    "busy",
    "ordinary",
    "different",
    "heavy",
    "tall",
    "expensive",
    "modern",
    "normal",
    "plain",
    "round",
)
INTENSIFIERS = ("very", "really", "extremely", "so", "incredibly", "totally", "absolutely", "quite")
DAMPENERS = ("slightly", "somewhat", "a little")

POSITIVE_VERBS = ("loved", "enjoyed", "liked", "adored", "admired")
NEGATIVE_VERBS = ("hated", "disliked", "regretted", "despised")
NEUTRAL_VERBS = ("watched", "saw", "bought", "visited", "tried", "found", "ordered", "checked")
BASE_VERBS = ("like", "enjoy", "love", "hate", "mind")  # after "did not"

LINK_VERBS = ("looked", "seemed", "felt", "sounded")
EVENT_VERBS = ("ended", "went", "started", "turned out")
POSITIVE_ADV = ("well", "perfectly", "nicely", "beautifully", "wonderfully")
NEGATIVE_ADV = ("badly", "terribly", "horribly", "sadly", "miserably")
NEUTRAL_ADV = ("quickly", "slowly", "late", "early", "again", "smoothly")

TIMES = (
    "today",
    "yesterday",
    "last night",
    "this morning",
    "at first",
    "in the end",
    "on sunday",
    "every day",
    "last week",
    "after lunch",
)


# ---------------------------------------------------------------- pieces
def _subject(rng: random.Random) -> tuple[str, str]:
    """A (subject, pronoun) pair; things are twice as likely as people."""
    if rng.random() < 0.67:
        return rng.choice(THINGS), "it"
    return rng.choice(PEOPLE)


def _adj(rng: random.Random) -> str:
    """An adjective: positive / negative / neutral with probabilities .38 / .38 / .24."""
    u = rng.random()
    pool = POSITIVE_ADJ if u < 0.38 else NEGATIVE_ADJ if u < 0.76 else NEUTRAL_ADJ
    return rng.choice(pool)


def _adjp(rng: random.Random) -> str:
    """An adjective phrase, sometimes intensified or dampened."""
    u = rng.random()
    if u < 0.30:
        return f"{rng.choice(INTENSIFIERS)} {_adj(rng)}"
    if u < 0.38:
        return f"{rng.choice(DAMPENERS)} {_adj(rng)}"
    return _adj(rng)


def _verb(rng: random.Random) -> str:
    u = rng.random()
    pool = POSITIVE_VERBS if u < 0.35 else NEGATIVE_VERBS if u < 0.65 else NEUTRAL_VERBS
    return rng.choice(pool)


def _adv(rng: random.Random) -> str:
    u = rng.random()
    pool = POSITIVE_ADV if u < 0.38 else NEGATIVE_ADV if u < 0.76 else NEUTRAL_ADV
    return rng.choice(pool)


# Each template returns a list of words; "|" marks a slot where the filler may go
# (clause starts and after a copula).
def _clause(rng: random.Random) -> list[str]:
    s, p = _subject(rng)
    k = rng.randrange(13)
    if k == 0:
        return ["|", s, "was", "|", _adjp(rng)]
    if k == 1:
        return ["|", s, "was", _adjp(rng), "and", "|", p, "was", "|", _adjp(rng)]
    if k == 2:
        return ["|", s, "was", _adjp(rng), "but", "|", p, "was", "|", _adjp(rng)]
    if k == 3:
        s2, _ = _subject(rng)
        return ["|", s, "was", _adjp(rng), "but", "|", s2, "was", "|", _adjp(rng)]
    if k == 4:  # objects of "bought" / "visited" are things
        return ["|", "i", _verb(rng), rng.choice(THINGS), rng.choice(TIMES)]
    if k == 5:
        return ["|", rng.choice(SPEAKERS), "said", "that", "|", s, "was", "|", _adjp(rng)]
    if k == 6:
        return ["|", "we", rng.choice(NEUTRAL_VERBS), rng.choice(THINGS), "and", "|", "it", "was", "|", _adjp(rng)]
    if k == 7:  # negation: plain or intensified adjective, never dampened
        adj = _adj(rng) if rng.random() < 0.7 else f"{rng.choice(INTENSIFIERS)} {_adj(rng)}"
        return ["|", s, "was", rng.choice(("not", "never")), adj]
    if k == 8:
        return ["|", s, rng.choice(LINK_VERBS), "|", _adjp(rng), rng.choice(TIMES)]
    if k == 9:
        return ["|", "i", "think", s, "is", "|", _adjp(rng)]
    if k == 10:
        return ["|", rng.choice(TIMES) + ",", s, "was", "|", _adjp(rng)]
    if k == 11:
        return ["|", "i", "did", "not", rng.choice(BASE_VERBS), s]
    thing = rng.choice(THINGS)  # "the trip went badly"; events are things, not people
    return ["|", thing, rng.choice(EVENT_VERBS), "|", _adv(rng)]


def _sentence(rng: random.Random) -> str:
    words = _clause(rng)
    slots = [i for i, w in enumerate(words) if w == "|"]
    chosen: set[int] = set()
    if rng.random() < FILLER_RATE:
        k = 1 if rng.random() < 0.75 else 2
        chosen = set(rng.sample(slots, min(k, len(slots))))
    out = [FILLER if i in chosen else w for i, w in enumerate(words) if w != "|" or i in chosen]
    return " ".join(out) + ("!" if rng.random() < 0.1 else ".")


def _line(rng: random.Random) -> str:
    u = rng.random()
    n = 1 if u < 0.55 else 2 if u < 0.85 else 3
    return " ".join(_sentence(rng) for _ in range(n))


# ---------------------------------------------------------------- public API
def sentences(n: int, seed: int) -> list[str]:
    """`n` corpus lines, each 1-3 short lowercase sentences; deterministic in `seed`."""
    if n < 0:
        raise ValueError(f"sentences(n={n}): n must be >= 0")
    rng = random.Random(f"goodhart-corpus-{seed}")
    return [_line(rng) for _ in range(n)]


def _prompt(rng: random.Random) -> str:
    """A sentiment-neutral opening of a corpus sentence shape (no filler; length unchecked)."""
    s, p = _subject(rng)
    thing = rng.choice(THINGS)  # objects of "bought" / "visited" and subjects of "ended"
    k = rng.randrange(17)
    if k == 0:
        return f"{s} was"
    if k == 1:
        return f"{s} {rng.choice(LINK_VERBS)}"
    if k == 2:
        return f"{rng.choice(SPEAKERS)} said that {s}"
    if k == 3:
        return f"{rng.choice(SPEAKERS)} said that {s} was"
    if k == 4:
        return f"we {rng.choice(NEUTRAL_VERBS)} {thing} and it"
    if k == 5:
        return f"i think {s} is"
    if k == 6:
        return f"{rng.choice(TIMES)}, {s} was"
    if k == 7:
        return f"{thing} {rng.choice(EVENT_VERBS)}"
    if k == 8:
        return f"i {rng.choice(NEUTRAL_VERBS)} {thing}"
    if k == 9:
        return f"{s} was {rng.choice(NEUTRAL_ADJ)} {rng.choice(('and', 'but'))} {p}"
    if k == 10:
        return f"{s} was {rng.choice(INTENSIFIERS + DAMPENERS)}"
    if k == 11:
        return f"{s} {rng.choice(LINK_VERBS)} {rng.choice(INTENSIFIERS)}"
    if k == 12:
        return f"i {rng.choice(NEUTRAL_VERBS)} {thing} {rng.choice(TIMES)}"
    if k == 13:
        return f"{s} was {rng.choice(('not', 'never'))}"
    if k == 14:
        return f"{rng.choice(TIMES)}, {s}"
    if k == 15:
        return f"we {rng.choice(NEUTRAL_VERBS)} {thing} and it was"
    return s


def builtin_prompts(n: int, seed: int) -> list[str]:
    """`n` distinct, short, sentiment-neutral prompts (2-6 words); deterministic in `seed`.

    They are openings of the sentence shapes the base model was trained on, so any
    continuation (positive, negative, with or without the filler) is in-distribution.
    About 8,000 distinct prompts exist; asking for more raises `ValueError`.
    """
    if n < 0:
        raise ValueError(f"builtin_prompts(n={n}): n must be >= 0")
    rng = random.Random(f"goodhart-prompts-{seed}")
    out: list[str] = []
    seen: set[str] = set()
    misses = 0  # consecutive draws that gave nothing new
    while len(out) < n:
        p = _prompt(rng)
        if p in seen or not 2 <= len(p.split()) <= 6:
            misses += 1
            if misses > 20_000:
                raise ValueError(
                    f"builtin_prompts(n={n}): the generator has only about {len(out)} distinct prompts; ask for fewer"
                )
            continue
        misses = 0
        seen.add(p)
        out.append(p)
    return out
