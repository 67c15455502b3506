//! Vector database backends.
