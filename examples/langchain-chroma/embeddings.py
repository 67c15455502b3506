"""A small deterministic embedding for the demo and the tests: no model, no network.

Each word of the text (lower-cased, letters and digits only, a few stop words dropped) is
hashed with BLAKE2b into one of DIMENSIONS buckets with a sign taken from the same hash; the
counts are summed and the vector is scaled to length 1. Texts that share words end up close
under cosine or L2 distance, which is enough to make retrieval over a small corpus behave
sensibly. The same text always gives the same vector, in every process (Python's own hash()
is salted per process, so it is not used).
"""

from __future__ import annotations

import hashlib
import math
import re

from langchain_core.embeddings import Embeddings

DIMENSIONS = 64

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    "a an and are as at be by for from has have how in is it of on or our the this to was"
    " we what when where which who will with".split()
)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]


def embed_text(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The embedding of one text: a unit vector of `dimensions` floats (all zeros for a text
    without any word, so it is never NaN)."""
    vector = [0.0] * dimensions
    for word in _words(text):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        bucket = value % dimensions
        sign = 1.0 if (value >> 63) & 1 else -1.0
        vector[bucket] += sign
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return vector
    return [x / norm for x in vector]


class HashingEmbeddings(Embeddings):
    """LangChain `Embeddings` backed by `embed_text`."""

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [embed_text(t, self.dimensions) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed_text(text, self.dimensions)
