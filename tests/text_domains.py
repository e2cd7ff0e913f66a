"""Two kinds of short text, generated offline and seeded: reviews (of films and products) and news.

A text model's drift test needs traffic of another domain whose lengths look like the reference's
(as NYT editorials do beside movie reviews): each news template mirrors a review template (the
same words and punctuation around slots of the same number of words), so only their meaning
tells the two apart.  The reviews avoid the words of ``tests.models.VOCAB`` ('good', 'bad' ...), so the test
models answer both kinds alike.
"""

from __future__ import annotations

import random

_REVIEW_TEMPLATES = [
    "The {thing} was {opinion}, and the {part} felt {opinion2}.",
    "I {verb} this {thing}: {opinion} {part}, {opinion2} overall.",
    "Honestly the {part} of this {thing} is {opinion}, would {recommend}.",
    "{opinion_cap} {thing}, though the {part} was {opinion2} at times.",
    "My {person} and I found the {thing} {opinion}; the {part} was {opinion2}.",
    "Five minutes in, the {part} already seemed {opinion}, and the {thing} stayed {opinion2}.",
]
_REVIEW_WORDS = {
    "thing": ["movie", "film", "sequel", "blender", "headphones", "novel", "sitcom", "laptop", "documentary", "jacket"],
    "part": ["acting", "plot", "battery", "soundtrack", "ending", "screen", "dialogue", "fabric", "pacing", "camera"],
    "opinion": [
        "wonderful",
        "boring",
        "hilarious",
        "dreadful",
        "charming",
        "dull",
        "superb",
        "terrible",
        "lovely",
        "weak",
    ],
    "opinion2": ["moving", "clumsy", "fun", "cheap", "sturdy", "predictable", "fantastic", "annoying", "solid", "flat"],
    "verb": ["loved", "hated", "enjoyed", "returned", "adored", "regretted buying", "liked", "disliked"],
    "recommend": ["recommend it", "not buy again", "watch it twice", "skip it", "gift it", "return it"],
    "person": ["sister", "husband", "kids", "friend", "roommate", "dad"],
}
# one news sentence for each review template, of the same shape: the same words and punctuation
# around slots of the same number of words
_NEWS_TEMPLATES = [
    "The {policy} was {passed}, and the {market} felt {mood}.",
    "We {verb} this {policy}: {trend} {market}, {mood} overall.",
    "Honestly the {market} of this {region} is {trend}, said {official}.",
    "{trend_cap} {market}, though the {policy} was {passed} at times.",
    "My {group} and I found the {policy} {mood}; the {market} was {trend}.",
    "Five minutes in, the {market} already seemed {trend}, and the {policy} stayed {mood}.",
]
_NEWS_WORDS = {
    "policy": ["tariff", "budget", "levy", "subsidy", "treaty", "pension", "embargo", "mandate", "ceasefire", "merger"],
    "market": ["bonds", "exports", "stocks", "currency", "housing", "payrolls", "credit", "oil", "inflation", "yields"],
    "passed": ["approved", "delayed", "repealed", "amended", "blocked", "signed", "vetoed", "ratified"],
    "mood": ["shaky", "fragile", "steady", "volatile", "tense", "costly", "risky", "unclear"],
    "trend": ["falling", "rising", "flat", "weak", "slowing", "surging", "sliding", "strong"],
    "verb": ["questioned", "backed", "opposed", "welcomed", "doubted", "praised", "feared", "debated"],
    "region": ["region", "province", "country", "state", "bloc", "district"],
    "official": ["the minister", "the governor", "a spokesman", "the senator", "an economist", "the mayor"],
    "group": ["aides", "staff", "lawyers", "bankers", "advisers", "clients"],
}


def _fill(template: str, words: dict[str, list[str]], rng: random.Random) -> str:
    chosen = {key: rng.choice(values) for key, values in words.items()}
    chosen.update({f"{key}_cap": value[0].upper() + value[1:] for key, value in chosen.items()})
    return template.format(**chosen)


def reviews(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [_fill(rng.choice(_REVIEW_TEMPLATES), _REVIEW_WORDS, rng) for _ in range(count)]


def news(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [_fill(rng.choice(_NEWS_TEMPLATES), _NEWS_WORDS, rng) for _ in range(count)]
