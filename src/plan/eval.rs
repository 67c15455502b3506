//! The partial evaluator over the plan IR, and the reference evaluator on records.
