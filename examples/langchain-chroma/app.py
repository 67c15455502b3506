"""A small retrieval app written the way LangChain's docs show it. It has no idea about
authorization: it talks to "Chroma" at VECGATE_URL (which is really vecgate) and sends the
signed-in user's token in the Authorization header. That is the only change from an app
that talks to Chroma directly.

    VECGATE_URL=http://127.0.0.1:8080 VECGATE_TOKEN=<token> python app.py ask "QUESTION"
    VECGATE_URL=... VECGATE_TOKEN=... python app.py add --id ID \
        --department D --region R "TEXT"

`ask` retrieves the documents an LLM would be given as context and prints them; this demo has
no LLM, so nothing leaves the machine. `add` saves a note into the knowledge base.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlparse

import chromadb
from langchain_chroma import Chroma

from embeddings import HashingEmbeddings

COLLECTION = os.environ.get("VECGATE_COLLECTION", "company-docs")


def open_store() -> Chroma:
    url = urlparse(os.environ.get("VECGATE_URL", "http://127.0.0.1:8080"))
    token = os.environ["VECGATE_TOKEN"]
    client = chromadb.HttpClient(
        host=url.hostname,
        port=url.port,
        ssl=url.scheme == "https",
        headers={"Authorization": f"Bearer {token}"},
    )
    return Chroma(
        client=client, collection_name=COLLECTION, embedding_function=HashingEmbeddings()
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
            [text], metadatas=[{"department": department, "region": region}], ids=[doc_id]
        )
    except Exception as exc:  # the client raises whatever the server's error maps to
        print(f"  refused: {type(exc).__name__}: {exc}")
        return 1
    print(f"  saved {doc_id} as {department}/{region}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="LangChain retrieval app (vecgate demo)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_ask = sub.add_parser("ask", help="retrieve the context for a question")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", type=int, default=4, help="documents to retrieve (default 4)")
    p_add = sub.add_parser("add", help="save a note")
    p_add.add_argument("--id", required=True)
    p_add.add_argument("--department", required=True)
    p_add.add_argument("--region", required=True)
    p_add.add_argument("text")
    args = parser.parse_args()
    if args.command == "ask":
        return ask(args.question, args.k)
    return add(args.id, args.text, args.department, args.region)


if __name__ == "__main__":
    sys.exit(main())
