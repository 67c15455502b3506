//! Cerbos' plan normalisation.
