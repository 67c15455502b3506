//! Where a Chroma record's attributes live: flat metadata keys `<attr_prefix><name>`.

use crate::backends::seam::RecordAttributes;
use crate::plan::Value;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// `R.attr` of one record, read from its metadata (`None`: the record has none).
#[derive(Debug, Clone, Copy)]
pub struct FlatMetadata<'a> {
    pub metadata: Option<&'a Map<String, Json>>,
    pub prefix: &'a str,
}

impl RecordAttributes for FlatMetadata<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        let metadata = self.metadata?;
        let value = if self.prefix.is_empty() {
            metadata.get(name)
        } else {
            metadata.get(&format!("{}{name}", self.prefix))
        };
        value.map(Value::from_json)
    }

    fn all(&self) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        for (key, value) in self.metadata.into_iter().flatten() {
            if let Some(name) = key.strip_prefix(self.prefix).filter(|n| !n.is_empty()) {
                attr.insert(name.to_string(), Value::from_json(value));
            }
        }
        attr
    }
}
