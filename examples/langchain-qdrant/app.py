"""A small retrieval app written the way langchain-qdrant's docs show it. It has no idea about
authorization: it talks to "Qdrant" at VECGATE_URL (which is really vecgate) and passes the
signed-in user's token as qdrant-client's `api_key`. That is the only change from an app that
talks to Qdrant directly.

    VECGATE_URL=http://127.0.0.1:8080 VECGATE_TOKEN=<token> python app.py ask "QUESTION"
    VECGATE_URL=... VECGATE_TOKEN=... python app.py add --id ID \
        --department D --region R "TEXT"

`ask` retrieves the documents an LLM would be given as context and prints them; this demo has
no LLM, so nothing leaves the machine. `add` saves a note into the knowledge base.

The corpus, the embedding and the token helper are shared with the Chroma example
(../langchain-chroma): the app, the policies and the data are the same, only the database
differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "langchain-chroma"))  # corpus, embeddings, mint_token

from langchain_qdrant import QdrantVectorStore  # noqa: E402
from qdrant_client import QdrantClient  # noqa: E402

from embeddings import HashingEmbeddings  # noqa: E402
from point_ids import point_id  # noqa: E402

COLLECTION = os.environ.get("VECGATE_COLLECTION", "company-docs")


def connect() -> QdrantClient:
    url = os.environ.get("VECGATE_URL", "http://127.0.0.1:8080")
    token = os.environ["VECGATE_TOKEN"]
    with warnings.catch_warnings():
        # qdrant-client warns about an api key over plain http; the demo runs on loopback.
        # In production, put TLS on vecgate's listener and use an https:// URL.
        warnings.simplefilter("ignore")
        return QdrantClient(url=url, api_key=token, prefer_grpc=False)


def open_store() -> QdrantVectorStore:
    return QdrantVectorStore(
        client=connect(), collection_name=COLLECTION, embedding=HashingEmbeddings()
    )


def ask(question: str, k: int) -> int:
    retriever = open_store().as_retriever(search_kwargs={"k": k})
    docs = retriever.invoke(question)
    print(f"  retrieved {len(docs)} of the {k} documents asked for:")
    for i, doc in enumerate(docs, 1):
        meta = doc.metadata
        print(f"  {i}. [{meta.get('department')}/{meta.get('region')}] {doc.page_content}")
    return 0


def add(doc_id: str, text: str, department: str, region: str) -> int:
    try:
        open_store().add_texts(
            [text],
            metadatas=[{"department": department, "region": region}],
            ids=[point_id(doc_id)],
        )
    except Exception as exc:  # qdrant-client raises UnexpectedResponse with the status
        print(f"  refused: {type(exc).__name__}: {exc}")
        return 1
    print(f"  saved {doc_id} as {department}/{region}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="LangChain retrieval app on Qdrant (vecgate demo)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_ask = sub.add_parser("ask", help="retrieve the context for a question")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", type=int, default=4, help="documents to retrieve (default 4)")
    p_add = sub.add_parser("add", help="save a note")
    p_add.add_argument("--id", required=True, help="a name; stored as a UUID derived from it")
    p_add.add_argument("--department", required=True)
    p_add.add_argument("--region", required=True)
    p_add.add_argument("text")
    args = parser.parse_args()
    if args.command == "ask":
        return ask(args.question, args.k)
    return add(args.id, args.text, args.department, args.region)


if __name__ == "__main__":
    sys.exit(main())
