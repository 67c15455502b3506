//! Filtering Chroma's get and query answers without building a tree: the answer is scanned
//! once and validated ([`crate::json::scan`]), each hit is judged on its id and the metadata
//! keys the plan reads, and an answer that loses hits is the database's text with the
//! removed rows cut out of every parallel list (and, where the metadata was only asked for
//! the check, `metadatas` nulled and dropped from the echoed `include`).
//!
//! This is the fast path of [`super::response`]'s filters and must agree with them exactly:
//! it answers only when the answer has the shape they accept, and then removes the same
//! rows, counts the same hits and returns a body that means the same JSON. Anything else —
//! a shape they refuse, a duplicated top-level key, a search answer, text the scanner leaves
//! to serde_json — is `None`, decided before any hit is judged, and the tree path decides.

use super::request::Trim;
use super::routes::Operation;
use crate::backends::seam::{Filtered, FilteredBody, Judge, RecordAttributes};
use crate::backends::attribute_text;
use crate::json::scan::{splice, Members, Scan, Str};
use crate::plan::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

const IDS: &str = "ids";
const METADATAS: &str = "metadatas";
const INCLUDE: &str = "include";

/// One value of the answer, as far as the filter reads it.
struct Node {
    range: Range<usize>,
    kind: Kind,
}

enum Kind {
    Null,
    Str(Str),
    Object(Members),
    List(Vec<Node>),
    /// Anything else (validated, not read).
    Other,
}

/// Reads a value, lists down to `levels` deep; objects keep their members.
fn read(scan: &mut Scan<'_>, levels: usize) -> Option<Node> {
    let start = scan.position();
    let kind = match scan.peek()? {
        b'[' if levels > 0 => {
            let mut items = Vec::new();
            scan.array(|scan| {
                items.push(read(scan, levels - 1)?);
                Some(())
            })?;
            Kind::List(items)
        }
        b'{' => Kind::Object(Members::read(scan)?),
        b'"' => Kind::Str(scan.string()?),
        b'n' => {
            scan.value()?;
            Kind::Null
        }
        _ => {
            scan.value()?;
            Kind::Other
        }
    };
    Some(Node { range: start..scan.position(), kind })
}

fn list(node: &Node) -> Option<&[Node]> {
    match &node.kind {
        Kind::List(items) => Some(items),
        _ => None,
    }
}

/// A get or query answer filtered, or `None` for the tree path to decide.
pub(super) fn filter(op: Operation, trim: Trim, prefix: &str, body: &[u8], judge: &mut dyn Judge) -> Option<Filtered> {
    let batched = match op {
        Operation::Query => true,
        Operation::Get => false,
        _ => return None,
    };
    let mut scan = Scan::new(body)?;
    let mut columns: Vec<(Str, Node)> = Vec::new();
    let top = scan.object(|scan, name| {
        columns.push((name, read(scan, if batched { 2 } else { 1 })?));
        Some(())
    })?;
    scan.finish()?;
    let mut names: Vec<&str> = Vec::with_capacity(columns.len());
    for (name, _) in &columns {
        let name = (!name.escaped).then(|| scan.slice(name.start..name.end)).flatten()?;
        if names.contains(&name) {
            return None;
        }
        names.push(name);
    }
    let column = |wanted: &str| names.iter().position(|n| *n == wanted).map(|i| &columns[i].1);

    // The ids, one list per query (a get is one list).
    let ids_node = column(IDS)?;
    let id_lists: Vec<&[Node]> = if batched {
        list(ids_node)?.iter().map(list).collect::<Option<_>>()?
    } else {
        vec![list(ids_node)?]
    };
    let mut ids: Vec<Vec<Cow<'_, str>>> = Vec::with_capacity(id_lists.len());
    for items in &id_lists {
        let mut batch = Vec::with_capacity(items.len());
        for item in *items {
            let Kind::Str(s) = &item.kind else { return None };
            batch.push(scan.decoded(*s)?);
        }
        ids.push(batch);
    }
    // Every column but `include` is null or parallel to the ids.
    for (name, node) in names.iter().zip(columns.iter().map(|(_, n)| n)) {
        if *name == INCLUDE || matches!(node.kind, Kind::Null) {
            continue;
        }
        let outer = list(node)?;
        if batched {
            if outer.len() != ids.len() {
                return None;
            }
            for (inner, batch) in outer.iter().zip(&ids) {
                if list(inner)?.len() != batch.len() {
                    return None;
                }
            }
        } else if outer.len() != ids[0].len() {
            return None;
        }
    }
    // Each hit's metadata (null, or the column absent: none).
    let metadata_lists: Vec<Option<&[Node]>> = match column(METADATAS) {
        None => vec![None; ids.len()],
        Some(node) if matches!(node.kind, Kind::Null) => vec![None; ids.len()],
        Some(node) if batched => list(node)?.iter().map(|inner| list(inner).map(Some)).collect::<Option<_>>()?,
        Some(node) => vec![Some(list(node)?)],
    };
    for items in metadata_lists.iter().flatten() {
        if items.iter().any(|m| !matches!(m.kind, Kind::Object(_) | Kind::Null)) {
            return None;
        }
    }
    let include = column(INCLUDE);
    if trim.drop_metadatas {
        let items = list(include?)?;
        if !items.iter().all(|i| matches!(i.kind, Kind::Str(_))) {
            return None;
        }
    }

    // Judge every hit, in order.
    let mut masks: Vec<Vec<bool>> = Vec::with_capacity(ids.len());
    for (batch, metadatas) in ids.iter().zip(&metadata_lists) {
        let mut mask = Vec::with_capacity(batch.len());
        for (i, id) in batch.iter().enumerate() {
            let members = metadatas.and_then(|m| match &m.get(i)?.kind {
                Kind::Object(members) => Some(members),
                _ => None,
            });
            let attrs = RawMetadata { scan: &scan, members, prefix };
            mask.push(judge.admits(&id.as_ref(), &attrs));
        }
        masks.push(mask);
    }
    let stripped = masks.iter().flatten().filter(|keep| !**keep).count();
    let returned = masks.iter().flatten().filter(|keep| **keep).count();
    if stripped == 0 && !trim.drop_metadatas {
        return Some(Filtered { body: FilteredBody::Unchanged, stripped, returned: Some(returned) });
    }

    // The rows removed from every parallel list, `metadatas` and `include` trimmed.
    let text = scan.text();
    let raw = |range: &Range<usize>| text.get(range.clone()).unwrap_or_default().as_bytes();
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    for (name, node) in names.iter().zip(columns.iter().map(|(_, n)| n)) {
        if *name == INCLUDE {
            if trim.drop_metadatas {
                let kept: Vec<&[u8]> = list(node)?
                    .iter()
                    .filter(|i| !matches!(i.kind, Kind::Str(s) if scan.is(s, METADATAS)))
                    .map(|i| raw(&i.range))
                    .collect();
                edits.push((node.range.clone(), joined(&kept)));
            }
            continue;
        }
        if *name == METADATAS && trim.drop_metadatas {
            edits.push((node.range.clone(), b"null".to_vec()));
            continue;
        }
        if stripped == 0 || matches!(node.kind, Kind::Null) {
            continue;
        }
        let outer = list(node)?;
        let rows = |items: &[Node], mask: &[bool]| -> Vec<u8> {
            let kept: Vec<&[u8]> = items.iter().zip(mask).filter(|(_, keep)| **keep).map(|(i, _)| raw(&i.range)).collect();
            joined(&kept)
        };
        let rewritten = if batched {
            let inner: Vec<Vec<u8>> = outer.iter().zip(&masks).map(|(inner, mask)| rows(list(inner).unwrap_or_default(), mask)).collect();
            joined(&inner.iter().map(Vec::as_slice).collect::<Vec<_>>())
        } else {
            rows(outer, &masks[0])
        };
        edits.push((node.range.clone(), rewritten));
    }
    if trim.drop_metadatas && column(METADATAS).is_none() {
        let close = top.end - 1;
        let member: &[u8] = if columns.is_empty() { b"\"metadatas\":null" } else { b",\"metadatas\":null" };
        edits.push((close..close, member.to_vec()));
    }
    let body = splice(body, &edits)?;
    Some(Filtered { body: FilteredBody::Spliced(body), stripped, returned: Some(returned) })
}

/// `[` items `,` … `]`.
fn joined(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

/// `R.attr` of one hit, read from its metadata's text: flat keys `<prefix><name>`, the last
/// of two equal keys winning (as when the answer is parsed).
struct RawMetadata<'a, 'b> {
    scan: &'a Scan<'b>,
    members: Option<&'a Members>,
    prefix: &'a str,
}

impl RecordAttributes for RawMetadata<'_, '_> {
    fn get(&self, name: &str) -> Option<Value> {
        let members = self.members?;
        let range = if self.prefix.is_empty() {
            members.get(self.scan, name)
        } else {
            members.get(self.scan, &format!("{}{name}", self.prefix))
        }?;
        attribute_text::value_of(self.scan.slice(range)?)
    }

    fn all(&self) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        for (key, range) in self.members.map_or(&[][..], |m| &m.entries) {
            let Some(key) = self.scan.decoded(*key) else { continue };
            let Some(name) = key.strip_prefix(self.prefix).filter(|n| !n.is_empty()) else { continue };
            if let Some(value) = self.scan.slice(range.clone()).and_then(attribute_text::value_of) {
                attr.insert(name.to_string(), value);
            }
        }
        attr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::chroma::database::filter_hits_parsed;
    use crate::backends::testkit::RecordingJudge;
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    /// The shared recording judge, asking for every attribute of some hits.
    fn recorder() -> RecordingJudge {
        RecordingJudge::new(|id| id.contains('a'))
    }

    fn attr_value() -> impl Strategy<Value = Json> {
        prop_oneof![
            prop::sample::select(vec!["FINANCE", "HR", "FIN\"ANCE", "é"]).prop_map(Json::from),
            any::<i32>().prop_map(Json::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite() && f.abs() < 1e200).prop_map(Json::from),
            any::<bool>().prop_map(Json::from),
            Just(Json::Null),
            Just(json!(["a", 1])),
        ]
    }

    fn metadata() -> impl Strategy<Value = Json> {
        prop_oneof![
            4 => prop::collection::btree_map(prop::sample::select(vec!["department", "region", "owner", "page", "x\ny"]), attr_value(), 0..5)
                .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            1 => Just(Json::Null),
        ]
    }

    /// A hit: its id, metadata, document and distance.
    type Hit = (String, Json, Json, f64);

    fn hit() -> impl Strategy<Value = Hit> {
        (
            prop::sample::select(vec!["doc-1", "doc-22", "a", "ab\"c", "\u{1F600}", "d\\e", "x"]).prop_map(String::from),
            metadata(),
            prop_oneof![Just(Json::Null), "[a-z ]{0,12}".prop_map(Json::from)],
            0.0f64..2.0,
        )
    }

    /// A get or query answer, sometimes damaged: a column one entry short, a top-level value
    /// of the wrong kind, a byte changed.
    fn answer(batched: bool) -> impl Strategy<Value = Vec<u8>> {
        let batches = if batched { 1..4usize } else { 1..2 };
        (
            prop::collection::vec(prop::collection::vec(hit(), 0..6), batches),
            prop::sample::select(vec!["list", "null", "absent"]),
            prop::sample::select(vec![vec!["metadatas", "documents", "distances"], vec!["documents"], vec!["metadatas"]]),
            0u8..10,
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(move |(batches, metadatas, include, damage, at, pretty)| {
                let column = |f: &dyn Fn(&Hit) -> Json| -> Json {
                    let lists: Vec<Json> = batches.iter().map(|b| Json::Array(b.iter().map(f).collect())).collect();
                    if batched { Json::Array(lists) } else { lists.into_iter().next().unwrap_or(json!([])) }
                };
                let mut a = serde_json::Map::new();
                a.insert("ids".into(), column(&|h| json!(h.0)));
                a.insert("documents".into(), column(&|h| h.2.clone()));
                if batched {
                    a.insert("distances".into(), column(&|h| json!(h.3)));
                }
                a.insert("embeddings".into(), Json::Null);
                a.insert("uris".into(), Json::Null);
                match metadatas {
                    "list" => {
                        a.insert("metadatas".into(), column(&|h| h.1.clone()));
                    }
                    "null" => {
                        a.insert("metadatas".into(), Json::Null);
                    }
                    _ => {}
                }
                a.insert("include".into(), json!(include));
                let mut answer = Json::Object(a);
                match damage {
                    0 => {
                        if let Some(Json::Array(docs)) = answer.get_mut("documents") {
                            docs.pop();
                        }
                    }
                    1 => answer["uris"] = json!("x"),
                    2 => answer["include"] = json!([1]),
                    _ => {}
                }
                let mut bytes = if pretty { serde_json::to_vec_pretty(&answer).unwrap() } else { serde_json::to_vec(&answer).unwrap() };
                if damage == 3 && !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = b"\"[]{},:x\\"[i % 9];
                }
                bytes
            })
    }

    fn agree(op: Operation, drop_metadatas: bool, prefix: &str, bytes: &[u8]) -> Result<bool, TestCaseError> {
        let trim = Trim { drop_metadatas };
        let mut fast_judge = recorder();
        let Some(fast) = filter(op, trim, prefix, bytes, &mut fast_judge) else {
            return Ok(false);
        };
        let mut tree_judge = recorder();
        let tree = filter_hits_parsed(op, trim, prefix, bytes, &mut tree_judge);
        let Ok(tree) = tree else {
            prop_assert!(false, "the tree path refused what the fast path read: {:?}\n{}", tree.err(), String::from_utf8_lossy(bytes));
            return Ok(false);
        };
        prop_assert_eq!(fast_judge.asked, tree_judge.asked);
        prop_assert_eq!((fast.stripped, fast.returned), (tree.stripped, tree.returned));
        match (fast.body, tree.body) {
            (FilteredBody::Unchanged, FilteredBody::Unchanged) => {}
            (FilteredBody::Spliced(text), FilteredBody::Rewritten(value)) => {
                let spliced: Json = serde_json::from_slice(&text).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&text))))?;
                prop_assert_eq!(spliced, value);
            }
            (a, b) => prop_assert!(false, "fast {:?} but tree {:?}", a, b),
        }
        Ok(true)
    }

    proptest! {
        /// The byte-range filter removes what the tree filter removes, judges the same hits
        /// with the same attributes, and writes a body that means the same JSON; where it
        /// does not answer, it has judged nothing.
        #[test]
        fn byte_ranges_filter_as_the_tree_does(
            (batched, bytes) in any::<bool>().prop_flat_map(|b| (Just(b), answer(b))),
            drop_metadatas in any::<bool>(),
            prefix in prop::sample::select(vec!["", "x"]),
        ) {
            let op = if batched { Operation::Query } else { Operation::Get };
            agree(op, drop_metadatas, prefix, &bytes)?;
        }
    }

    #[test]
    fn the_usual_answers_take_the_fast_path() {
        let hits: Vec<_> = (0..4).map(|i| (format!("doc-{i}"), json!({"department": if i == 2 { "HR" } else { "FINANCE" }, "page": i}))).collect();
        let answer = json!({
            "ids": [hits.iter().map(|h| h.0.clone()).collect::<Vec<_>>()],
            "documents": [hits.iter().map(|h| format!("text {}", h.0)).collect::<Vec<_>>()],
            "metadatas": [hits.iter().map(|h| h.1.clone()).collect::<Vec<_>>()],
            "distances": [[0.1, 0.2, 0.3, 0.4]], "embeddings": null, "uris": null, "data": null,
            "include": ["metadatas", "documents", "distances"],
        });
        let bytes = serde_json::to_vec(&answer).unwrap();
        for drop in [false, true] {
            let mut judge = recorder();
            let filtered = filter(Operation::Query, Trim { drop_metadatas: drop }, "", &bytes, &mut judge).unwrap();
            assert_eq!((filtered.stripped, filtered.returned), (1, Some(3)));
            let FilteredBody::Spliced(text) = filtered.body else { panic!("expected a spliced body") };
            let out: Json = serde_json::from_slice(&text).unwrap();
            assert_eq!(out["ids"], json!([["doc-0", "doc-1", "doc-3"]]));
            assert_eq!(out["distances"], json!([[0.1, 0.2, 0.4]]));
            if drop {
                assert_eq!(out["metadatas"], Json::Null);
                assert_eq!(out["include"], json!(["documents", "distances"]));
            }
        }
        // Everything readable: the database's own bytes.
        let all: Json = serde_json::from_str(&String::from_utf8(bytes.clone()).unwrap().replace("HR", "FINANCE")).unwrap();
        let filtered = filter(Operation::Query, Trim::default(), "", &serde_json::to_vec(&all).unwrap(), &mut recorder()).unwrap();
        assert!(matches!(filtered.body, FilteredBody::Unchanged));
    }
}
