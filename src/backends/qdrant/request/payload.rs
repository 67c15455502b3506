//! The payload the hit check needs, forced into a read's answer, and what to trim from the
//! answer again so that the caller gets what it asked for.

use super::super::routes::Operation;
use super::fields::{check_fields, invalid};
use super::read::requests_mut;
use super::RequestError;
use serde_json::{json, Map, Value};

/// What to do to one request's point payloads in the response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PayloadTrim {
    /// The caller gets the payload as Qdrant returned it.
    #[default]
    AsReturned,
    /// The caller asked for no payload: remove the `payload` field (Qdrant omits it).
    Drop,
    /// The caller asked for these paths only: keep just them.
    Include(Vec<String>),
    /// The caller excluded these paths: remove them.
    Exclude(Vec<String>),
}

/// What the proxy must undo in a response after [`force_payload`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trim {
    /// One per request of the body (one for single forms, one per `searches` entry). A
    /// missing entry means [`PayloadTrim::AsReturned`].
    pub requests: Vec<PayloadTrim>,
    /// For groups: the `with_lookup` records' payload.
    pub lookup: PayloadTrim,
}

impl Trim {
    /// The trim of the `i`-th request.
    pub fn request(&self, i: usize) -> &PayloadTrim {
        const AS_RETURNED: &PayloadTrim = &PayloadTrim::AsReturned;
        self.requests.get(i).unwrap_or(AS_RETURNED)
    }

    /// Every payload goes back as Qdrant returned it.
    pub fn is_nothing(&self) -> bool {
        self.lookup == PayloadTrim::AsReturned
            && self.requests.iter().all(|t| *t == PayloadTrim::AsReturned)
    }
}

/// Makes every response point carry at least the payload paths `keys` (plain dotted paths,
/// such as `metadata.dept`), and says in [`Trim`] how to give the caller exactly what it
/// asked for. `with_payload` may be absent or null (Qdrant's default: true for scroll and
/// retrieve, false otherwise), a bool, a list of paths, `{"include": […]}` or
/// `{"exclude": […]}`; groups' `with_lookup` (payload default true) gets the same keys.
/// `GET points/{id}` always returns the whole payload: nothing to do. Paths with `[`, `]`
/// or quotes cannot be trimmed exactly and are `Unsupported`. Count, facet and the search
/// matrices return no points: `WrongOperation`.
pub fn force_payload(
    op: Operation,
    body: &mut Value,
    keys: &[String],
) -> Result<Trim, RequestError> {
    use Operation as O;
    if op == O::GetPoint {
        return Ok(Trim::default());
    }
    if matches!(
        op,
        O::CountPoints | O::Facet | O::SearchMatrixPairs | O::SearchMatrixOffsets
    ) {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    for key in keys {
        check_plain_path(key)?;
    }
    // Qdrant returns the payload by default on scroll only: a retrieve (`POST points`)
    // without `with_payload` returns none (measured on v1.18.3, whatever its doc comment says).
    let default_true = matches!(op, O::ScrollPoints);
    let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
    let mut trim = Trim::default();
    for request in requests_mut(op, obj)? {
        trim.requests
            .push(force_selector(request, "with_payload", default_true, keys)?);
        match request.get_mut("with_lookup") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Object(lookup)) => {
                check_fields(op, lookup, &["collection", "with_payload", "with_vectors"])?;
                trim.lookup = force_selector(lookup, "with_payload", true, keys)?;
            }
            Some(_) => return Err(invalid("with_lookup", "must be a name or an object")),
        }
    }
    Ok(trim)
}

/// Forces `keys` into the payload selector at `field`.
pub(super) fn force_selector(
    obj: &mut Map<String, Value>,
    field: &str,
    default_true: bool,
    keys: &[String],
) -> Result<PayloadTrim, RequestError> {
    let key_list = || Value::Array(keys.iter().map(|k| Value::from(k.as_str())).collect());
    let current = obj.get(field).cloned();
    let trim = match current {
        None | Some(Value::Null) if default_true => PayloadTrim::AsReturned,
        Some(Value::Bool(true)) => PayloadTrim::AsReturned,
        None | Some(Value::Null) | Some(Value::Bool(false)) => {
            if keys.is_empty() {
                return Ok(PayloadTrim::AsReturned);
            }
            obj.insert(field.to_string(), key_list());
            PayloadTrim::Drop
        }
        Some(Value::Array(items)) => {
            let (paths, trim) = force_include(field, &items, keys)?;
            obj.insert(field.to_string(), paths);
            trim
        }
        Some(Value::Object(sel)) => {
            let mut entries = sel.into_iter();
            let (kind, list) = match (entries.next(), entries.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(invalid(
                        field,
                        "must have exactly one of include or exclude",
                    ))
                }
            };
            let Value::Array(items) = list else {
                return Err(invalid(field, "include/exclude must be a list of paths"));
            };
            let (paths, trim) = match kind.as_str() {
                "include" => force_include(field, &items, keys)?,
                "exclude" => force_exclude(field, &items, keys)?,
                _ => {
                    return Err(invalid(
                        field,
                        "must have exactly one of include or exclude",
                    ))
                }
            };
            obj.insert(field.to_string(), json!({ kind: paths }));
            trim
        }
        Some(_) => {
            return Err(invalid(
                field,
                "must be a bool, a list of paths or a selector",
            ))
        }
    };
    Ok(trim)
}

pub(super) fn path_list(field: &str, items: &[Value]) -> Result<Vec<String>, RequestError> {
    items
        .iter()
        .map(|i| {
            let p = i
                .as_str()
                .ok_or_else(|| invalid(field, "payload paths must be strings"))?;
            check_plain_path(p)?;
            Ok(p.to_string())
        })
        .collect()
}

/// An include list with `keys` added where no listed path already covers them.
pub(super) fn force_include(
    field: &str,
    items: &[Value],
    keys: &[String],
) -> Result<(Value, PayloadTrim), RequestError> {
    let asked = path_list(field, items)?;
    let mut paths = asked.clone();
    for key in keys {
        if !paths.iter().any(|p| covers(p, key)) {
            paths.push(key.clone());
        }
    }
    let trim = if paths.len() == asked.len() {
        PayloadTrim::AsReturned
    } else {
        PayloadTrim::Include(asked)
    };
    Ok((json!(paths), trim))
}

/// An exclude list without the paths that would hide any of `keys`.
pub(super) fn force_exclude(
    field: &str,
    items: &[Value],
    keys: &[String],
) -> Result<(Value, PayloadTrim), RequestError> {
    let asked = path_list(field, items)?;
    let kept: Vec<&String> = asked
        .iter()
        .filter(|p| !keys.iter().any(|k| covers(p, k) || covers(k, p)))
        .collect();
    let trim = if kept.len() == asked.len() {
        PayloadTrim::AsReturned
    } else {
        PayloadTrim::Exclude(asked.clone())
    };
    Ok((json!(kept), trim))
}

/// True when the path `outer` selects `inner` (equal, or an ancestor of it).
pub(crate) fn covers(outer: &str, inner: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A payload path of plain keys joined by dots.
pub(crate) fn check_plain_path(path: &str) -> Result<(), RequestError> {
    if path.is_empty() || path.split('.').any(str::is_empty) || path.contains(['[', ']', '"']) {
        return Err(RequestError::Unsupported {
            what: "payload paths other than plain dotted keys",
        });
    }
    Ok(())
}
