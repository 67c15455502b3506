"""The demo corpus: eight short internal notes, two for each department × region.

Each record is tagged at ingestion time with the metadata the policy looks at (`department`,
`region`) plus a `topic` that applications may filter on themselves.
"""

from __future__ import annotations

# (id, text, metadata)
DOCUMENTS: list[tuple[str, str, dict[str, str]]] = [
    (
        "fin-emea-budget",
        "Finance EMEA: next quarter's budget is cut by 5 percent and travel spending is frozen"
        " until the audit closes.",
        {"department": "FINANCE", "region": "EMEA", "topic": "budget"},
    ),
    (
        "fin-emea-audit",
        "Finance EMEA: the external audit of the Frankfurt subsidiary starts in March; invoices"
        " older than 90 days must be reconciled before then.",
        {"department": "FINANCE", "region": "EMEA", "topic": "audit"},
    ),
    (
        "fin-amer-budget",
        "Finance AMER: next quarter's budget grows by 8 percent to pay for the new Toronto"
        " office.",
        {"department": "FINANCE", "region": "AMER", "topic": "budget"},
    ),
    (
        "fin-amer-tax",
        "Finance AMER: new sales tax rules apply to every US invoice from next quarter.",
        {"department": "FINANCE", "region": "AMER", "topic": "tax"},
    ),
    (
        "hr-emea-leave",
        "HR EMEA: parental leave in Germany and France rises to 20 weeks from next quarter.",
        {"department": "HR", "region": "EMEA", "topic": "leave"},
    ),
    (
        "hr-emea-hiring",
        "HR EMEA: the hiring freeze for the Paris office continues; two open roles were closed.",
        {"department": "HR", "region": "EMEA", "topic": "hiring"},
    ),
    (
        "hr-amer-benefits",
        "HR AMER: the health insurance plan changes next quarter; enrolment opens on the first"
        " day of the quarter.",
        {"department": "HR", "region": "AMER", "topic": "benefits"},
    ),
    (
        "hr-amer-reviews",
        "HR AMER: performance reviews for all US staff are due before next quarter starts.",
        {"department": "HR", "region": "AMER", "topic": "reviews"},
    ),
]


def ids_for(department: str, region: str) -> set[str]:
    """The ids of the documents tagged with this department and region."""
    return {
        doc_id
        for doc_id, _, meta in DOCUMENTS
        if meta["department"] == department and meta["region"] == region
    }
