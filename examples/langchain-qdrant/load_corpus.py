"""The ingestion pipeline: loads the demo corpus (../langchain-chroma/corpus.py) into Qdrant
through vecgate with langchain-qdrant, tagging every document with its department and region.

    VECGATE_URL=http://127.0.0.1:8080 VECGATE_TOKEN=<ingest token> python load_corpus.py

`QdrantVectorStore.from_texts` creates the collection when it does not exist (a `create` on
resource kind `collection`) and upserts the points (a `create` per new point). The token must
belong to a principal the policies allow both (the `ingest` role).
"""

from __future__ import annotations

import os
import sys
import warnings

from app import COLLECTION  # also puts ../langchain-chroma on sys.path
from corpus import DOCUMENTS
from embeddings import HashingEmbeddings
from langchain_qdrant import QdrantVectorStore
from point_ids import point_id


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api key over plain http: the demo runs on loopback
        store = QdrantVectorStore.from_texts(
            texts=[text for _, text, _ in DOCUMENTS],
            embedding=HashingEmbeddings(),
            metadatas=[dict(meta) for _, _, meta in DOCUMENTS],
            ids=[point_id(doc_id) for doc_id, _, _ in DOCUMENTS],
            url=os.environ.get("VECGATE_URL", "http://127.0.0.1:8080"),
            api_key=os.environ["VECGATE_TOKEN"],
            collection_name=COLLECTION,
        )
    print(f"loaded {len(DOCUMENTS)} documents into collection '{store.collection_name}':")
    for doc_id, _, meta in DOCUMENTS:
        print(f"  {doc_id:<18} {meta['department']}/{meta['region']}  (point {point_id(doc_id)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
