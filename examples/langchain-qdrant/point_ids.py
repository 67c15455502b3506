"""Point ids for the demo corpus in Qdrant.

Qdrant accepts only unsigned integers and UUIDs as point ids, while the corpus
(examples/langchain-chroma/corpus.py) names its documents `fin-emea-budget` and so on. Each
name is turned into a UUID with uuid5 under a fixed namespace, so every run, the loader, the
app and the tests agree on the id of each document.
"""

from __future__ import annotations

import uuid

# A fixed namespace for this demo (uuid5 of the project's name in the URL namespace).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/vecgate/examples/langchain-qdrant")


def point_id(doc_id: str) -> str:
    """The Qdrant point id (a UUID string, as Qdrant returns it) of the corpus document `doc_id`."""
    return str(uuid.uuid5(NAMESPACE, doc_id))
