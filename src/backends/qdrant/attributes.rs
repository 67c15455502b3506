//! Where a Qdrant point's attributes live: the object at the dotted `attr_prefix` inside its
//! payload (LangChain's layout: prefix `metadata.` → `payload.metadata`; an empty prefix means
//! the whole payload).

use crate::backends::seam::RecordAttributes;
use crate::plan::Value;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// `R.attr` of one point: the object its attributes sit in (`None`: the path is missing or
/// not an object, so the point has no attributes).
#[derive(Debug, Clone, Copy)]
pub struct NestedPayload<'a> {
    pub object: Option<&'a Map<String, Json>>,
}

impl<'a> NestedPayload<'a> {
    /// The attributes of `payload`, whose attributes sit under the dotted `prefix`.
    pub fn new(payload: Option<&'a Map<String, Json>>, prefix: &str) -> NestedPayload<'a> {
        let mut object = payload;
        for segment in prefix.split('.').filter(|s| !s.is_empty()) {
            object = object.and_then(|o| o.get(segment)).and_then(Json::as_object);
        }
        NestedPayload { object }
    }
}

impl RecordAttributes for NestedPayload<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        self.object?.get(name).map(Value::from_json)
    }

    fn all(&self) -> BTreeMap<String, Value> {
        self.object
            .map(|o| o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
            .unwrap_or_default()
    }
}
