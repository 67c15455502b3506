//! Where a record's attributes live: `R.attr.<name>` is the key `<attr_prefix><name>`.

use std::collections::BTreeSet;

/// Chroma keeps metadata flat: `R.attr.x` is the key `x`.
pub const CHROMA_DEFAULT_PREFIX: &str = "";
/// LangChain stores a Qdrant payload as `{page_content, metadata: {…}}`.
pub const QDRANT_DEFAULT_PREFIX: &str = "metadata.";

/// How a collection's records map to `R.attr`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldMapping {
    /// `R.attr.<name>` is the metadata key `<attr_prefix><name>`.
    pub attr_prefix: String,
    /// Attributes the write path guarantees to exist on every record with a non-null scalar
    /// (string, number or bool) value. Only these may be negated with `$ne`/`$nin`/`must_not`.
    pub required_attrs: BTreeSet<String>,
}

impl FieldMapping {
    pub fn new<I, S>(attr_prefix: &str, required_attrs: I) -> FieldMapping
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FieldMapping {
            attr_prefix: attr_prefix.to_string(),
            required_attrs: required_attrs.into_iter().map(Into::into).collect(),
        }
    }

    /// Chroma's default: flat keys, nothing required.
    #[must_use]
    pub fn chroma_default() -> FieldMapping {
        FieldMapping::new(CHROMA_DEFAULT_PREFIX, Vec::<String>::new())
    }

    /// Qdrant's default: keys under `metadata.`, nothing required.
    #[must_use]
    pub fn qdrant_default() -> FieldMapping {
        FieldMapping::new(QDRANT_DEFAULT_PREFIX, Vec::<String>::new())
    }

    /// The same mapping with these attributes declared required.
    #[must_use]
    pub fn with_required<I, S>(mut self, names: I) -> FieldMapping
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_attrs
            .extend(names.into_iter().map(Into::into));
        self
    }

    pub fn is_required(&self, name: &str) -> bool {
        self.required_attrs.contains(name)
    }
}
