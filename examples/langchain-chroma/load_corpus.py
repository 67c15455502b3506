"""The ingestion pipeline: loads the demo corpus (corpus.py) into Chroma through vecgate with
LangChain, tagging every document with its department and region.

    VECGATE_URL=http://127.0.0.1:8080 VECGATE_TOKEN=<ingest token> python load_corpus.py

The token must belong to a principal the policy lets create documents (the `ingest` role).
"""

from __future__ import annotations

import sys

from app import COLLECTION, open_store
from corpus import DOCUMENTS


def main() -> int:
    store = open_store()
    ids = store.add_texts(
        texts=[text for _, text, _ in DOCUMENTS],
        metadatas=[dict(meta) for _, _, meta in DOCUMENTS],
        ids=[doc_id for doc_id, _, _ in DOCUMENTS],
    )
    print(f"loaded {len(ids)} documents into collection '{COLLECTION}':")
    for doc_id, _, meta in DOCUMENTS:
        print(f"  {doc_id:<18} {meta['department']}/{meta['region']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
