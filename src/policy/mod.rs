//! Cerbos-compatible policies: model, loading, CEL, evaluation and planning.
