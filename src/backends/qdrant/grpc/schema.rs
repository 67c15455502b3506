//! The services' methods and their messages' fields, read from the descriptor set the build
//! compiled from Qdrant's protos ([`super::proto::DESCRIPTOR_SET`]).
//!
//! - The method table ([`super::methods`]) is tested against [`method_paths`]: a method of
//!   the protos that the table does not classify fails the build's tests.
//! - Every request is walked against its message's fields before it is decoded
//!   ([`check_known_fields`]): protobuf decoders skip fields they do not know, and so would
//!   vecgate's, silently dropping (or, re-encoded, hiding) whatever a newer client or a forged
//!   message put there. A field number the message does not define, at any depth, refuses the
//!   request, as an unknown JSON field does on the REST face. Groups are refused too.

use super::proto::DESCRIPTOR_SET;
use prost::Message as _;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// Deepest message nesting walked (prost's own decoder stops at 100).
const MAX_DEPTH: usize = 100;

/// Why a request's bytes are refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the message {message} has no field number {number}")]
    UnknownField { message: String, number: u64 },
    #[error("the message is not valid protobuf: {0}")]
    Malformed(&'static str),
    #[error("the method {0} is not in the protos")]
    UnknownMethod(String),
    #[error("the compiled protos cannot be read: {0}")]
    Descriptor(String),
}

/// One message's fields: number → the message type of a message-typed field (`None` for
/// scalars, strings, bytes and enums).
#[derive(Debug, Default)]
struct Fields {
    by_number: HashMap<u64, Option<String>>,
}

#[derive(Debug, Default)]
struct Schema {
    /// `/package.Service/Method` → the full name of its input message (`.qdrant.SearchPoints`).
    methods: BTreeMap<String, String>,
    /// Full message name (`.qdrant.Filter`, `.qdrant.PointStruct.PayloadEntry`) → fields.
    messages: HashMap<String, Fields>,
}

fn schema() -> Result<&'static Schema, SchemaError> {
    static SCHEMA: OnceLock<Result<Schema, SchemaError>> = OnceLock::new();
    SCHEMA.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Schema, SchemaError> {
    let set = FileDescriptorSet::decode(DESCRIPTOR_SET).map_err(|e| SchemaError::Descriptor(e.to_string()))?;
    let mut schema = Schema::default();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                schema
                    .methods
                    .insert(format!("/{package}.{}/{}", service.name(), method.name()), method.input_type().to_string());
            }
        }
        for message in &file.message_type {
            add_message(&mut schema.messages, &format!(".{package}"), message);
        }
    }
    Ok(schema)
}

fn add_message(messages: &mut HashMap<String, Fields>, scope: &str, message: &DescriptorProto) {
    let name = format!("{scope}.{}", message.name());
    let mut fields = Fields::default();
    for field in &message.field {
        let nested = matches!(field.r#type(), Type::Message | Type::Group).then(|| field.type_name().to_string());
        fields.by_number.insert(u64::from(field.number().unsigned_abs()), nested);
    }
    for nested in &message.nested_type {
        add_message(messages, &name, nested);
    }
    messages.insert(name, fields);
}

/// Every method of the public services, as `/package.Service/Method`.
pub fn method_paths() -> Result<Vec<String>, SchemaError> {
    Ok(schema()?.methods.keys().cloned().collect())
}

/// Checks that `bytes`, the request of the method at `path`, holds only fields its message
/// (and every message nested in it) defines. See the module documentation.
pub fn check_known_fields(path: &str, bytes: &[u8]) -> Result<(), SchemaError> {
    let schema = schema()?;
    let input = schema.methods.get(path).ok_or_else(|| SchemaError::UnknownMethod(path.to_string()))?;
    walk(schema, input, bytes, 0)
}

fn walk(schema: &Schema, message: &str, mut bytes: &[u8], depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return Err(SchemaError::Malformed("messages nest too deep"));
    }
    let fields = schema
        .messages
        .get(message)
        .ok_or_else(|| SchemaError::Descriptor(format!("no message {message}")))?;
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = key >> 3;
        let nested = fields.by_number.get(&number).ok_or_else(|| SchemaError::UnknownField {
            message: message.trim_start_matches('.').to_string(),
            number,
        })?;
        match key & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = skip(bytes, 8)?,
            5 => bytes = skip(bytes, 4)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|_| SchemaError::Malformed("a length too large"))?;
                let (value, rest) = split(bytes, len)?;
                if let Some(nested) = nested {
                    walk(schema, nested, value, depth + 1)?;
                }
                bytes = rest;
            }
            3 | 4 => return Err(SchemaError::Malformed("groups are not accepted")),
            _ => return Err(SchemaError::Malformed("an unknown wire type")),
        }
    }
    Ok(())
}

fn varint(bytes: &mut &[u8]) -> Result<u64, SchemaError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(SchemaError::Malformed("a truncated varint"))?;
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return Err(SchemaError::Malformed("a varint too large"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(SchemaError::Malformed("a varint too long"))
}

fn split(bytes: &[u8], len: usize) -> Result<(&[u8], &[u8]), SchemaError> {
    if bytes.len() < len {
        return Err(SchemaError::Malformed("a truncated field"));
    }
    Ok(bytes.split_at(len))
}

fn skip(bytes: &[u8], len: usize) -> Result<&[u8], SchemaError> {
    split(bytes, len).map(|(_, rest)| rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::proto::qdrant::{condition, Condition, FieldCondition, Filter, ScrollPoints};
    use super::*;

    const SCROLL: &str = "/qdrant.Points/Scroll";

    fn scroll() -> Vec<u8> {
        let filter = Filter {
            must: vec![Condition {
                condition_one_of: Some(condition::ConditionOneOf::Field(FieldCondition { key: "k".into(), ..Default::default() })),
            }],
            ..Default::default()
        };
        ScrollPoints { collection_name: "docs".into(), filter: Some(filter), limit: Some(3), ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn known_fields_pass_at_every_depth() {
        assert_eq!(check_known_fields(SCROLL, &scroll()), Ok(()));
        assert_eq!(check_known_fields(SCROLL, &[]), Ok(()));
    }

    #[test]
    fn an_unknown_field_is_refused_at_any_depth() {
        // Field 99 (varint 1) appended to the top level.
        let mut top = scroll();
        top.extend([0x98, 0x06, 0x01]);
        assert!(matches!(check_known_fields(SCROLL, &top), Err(SchemaError::UnknownField { number: 99, .. })));
        // The same inside the filter: a Filter with field 9 (length-delimited, empty).
        let mut inner = Filter::default().encode_to_vec();
        inner.extend([0x4a, 0x00]);
        let mut nested = ScrollPoints { collection_name: "docs".into(), ..Default::default() }.encode_to_vec();
        nested.push(0x12);
        nested.push(u8::try_from(inner.len()).unwrap());
        nested.extend(inner);
        let refused = check_known_fields(SCROLL, &nested).unwrap_err();
        assert_eq!(refused, SchemaError::UnknownField { message: "qdrant.Filter".into(), number: 9 });
    }

    #[test]
    fn malformed_bytes_and_groups_are_refused() {
        assert!(matches!(check_known_fields(SCROLL, &[0x0a, 0x05, b'a']), Err(SchemaError::Malformed(_))));
        assert!(matches!(check_known_fields(SCROLL, &[0x0b]), Err(SchemaError::Malformed(_))));
        assert!(matches!(check_known_fields("/qdrant.Points/Nope", &[]), Err(SchemaError::UnknownMethod(_))));
    }

    #[test]
    fn the_descriptor_lists_the_public_services_only() {
        let paths = method_paths().unwrap();
        assert!(paths.contains(&"/qdrant.Points/Query".to_string()));
        assert!(paths.contains(&"/grpc.health.v1.Health/Check".to_string()));
        assert!(paths.iter().all(|p| !p.contains("Internal") && !p.contains("Raft")), "{paths:?}");
    }
}
