//! Filtering Qdrant's answers that list points (query, scroll, search, recommend, discover,
//! and their batches) without building a tree: the answer is scanned once and validated
//! ([`crate::json::scan`]), each point is judged on its id and the payload attributes the
//! plan reads, and an answer that loses points (or whose payload was forced only for the
//! check) is the database's text with those points cut out of their list (and `payload`
//! removed from the points left).
//!
//! This is the fast path of [`super::response::filter_points`] and must agree with it
//! exactly: it answers only where the answer has the shape that function accepts and the
//! trims are ones it can apply to text (as returned, or dropped), and then removes the same
//! points and returns a body that means the same JSON. Anything else — retrieve by ids and
//! groups (always rewritten), a shape the tree refuses, a duplicated key where it matters,
//! text the scanner leaves to serde_json — is `None`, decided before any point is judged.

use super::point_id::PointId;
use super::request::{PayloadTrim, Trim};
use super::routes::Operation;
use crate::backends::seam::{Filtered, FilteredBody, Judge, RecordAttributes};
use crate::backends::attribute_text;
use crate::json::scan::{splice, Members, Scan, Str};
use crate::plan::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

/// Where an operation's answer lists its points, inside `result`.
#[derive(Clone, Copy)]
enum Layout {
    /// `result.points`.
    Points,
    /// `result` is the list.
    List,
    /// `result[i].points`.
    BatchPoints,
    /// `result[i]` are the lists.
    BatchLists,
}

fn layout(op: Operation) -> Option<Layout> {
    use Operation as O;
    Some(match op {
        O::QueryPoints | O::ScrollPoints => Layout::Points,
        O::SearchPoints | O::RecommendPoints | O::DiscoverPoints => Layout::List,
        O::QueryBatchPoints => Layout::BatchPoints,
        O::SearchBatchPoints | O::RecommendBatchPoints | O::DiscoverBatchPoints => Layout::BatchLists,
        _ => return None,
    })
}

/// A point's payload as the answer gives it.
enum Payload {
    Absent,
    Null,
    Object(Members),
}

struct Point {
    range: Range<usize>,
    /// Every member, for writing the point without its payload.
    members: Vec<(Str, Range<usize>)>,
    id: Option<Range<usize>>,
    payload: Payload,
}

struct PointList {
    range: Range<usize>,
    points: Vec<Point>,
}

fn read_point(scan: &mut Scan<'_>) -> Option<Point> {
    let start = scan.position();
    let mut members = Vec::new();
    let mut id = None;
    let mut payload = Payload::Absent;
    scan.object(|scan, name| {
        let at = scan.position();
        if scan.is(name, "payload") {
            payload = match scan.peek()? {
                b'{' => Payload::Object(Members::read(scan)?),
                b'n' => {
                    scan.value()?;
                    Payload::Null
                }
                // Not an object or null: the tree path refuses it.
                _ => return None,
            };
        } else {
            let value = scan.value()?;
            if scan.is(name, "id") {
                id = Some(value);
            }
        }
        members.push((name, at..scan.position()));
        Some(())
    })?;
    Some(Point { range: start..scan.position(), members, id, payload })
}

fn read_list(scan: &mut Scan<'_>) -> Option<PointList> {
    let start = scan.position();
    let mut points = Vec::new();
    scan.array(|scan| {
        points.push(read_point(scan)?);
        Some(())
    })?;
    Some(PointList { range: start..scan.position(), points })
}

/// An object whose member `field` (once, and only it is read) holds a point list.
fn read_holder(scan: &mut Scan<'_>, field: &str) -> Option<PointList> {
    let mut found = None;
    let mut twice = false;
    scan.object(|scan, name| {
        if scan.is(name, field) {
            twice |= found.is_some();
            found = Some(read_list(scan)?);
        } else {
            scan.value()?;
        }
        Some(())
    })?;
    if twice {
        return None;
    }
    found
}

fn read_result(scan: &mut Scan<'_>, layout: Layout) -> Option<Vec<PointList>> {
    match layout {
        Layout::Points => Some(vec![read_holder(scan, "points")?]),
        Layout::List => Some(vec![read_list(scan)?]),
        Layout::BatchPoints | Layout::BatchLists => {
            let mut lists = Vec::new();
            scan.array(|scan| {
                lists.push(match layout {
                    Layout::BatchPoints => read_holder(scan, "points")?,
                    _ => read_list(scan)?,
                });
                Some(())
            })?;
            Some(lists)
        }
    }
}

/// An answer that lists points, filtered, or `None` for the tree path to decide.
pub(super) fn filter(op: Operation, trim: &Trim, prefix: &str, body: &[u8], judge: &mut dyn Judge) -> Option<Filtered> {
    let layout = layout(op)?;
    let mut scan = Scan::new(body)?;
    let mut lists = None;
    let mut names: Vec<Str> = Vec::new();
    scan.object(|scan, name| {
        if names.iter().any(|n| scan.is(*n, &scan.decoded(name).unwrap_or_default())) {
            return None;
        }
        names.push(name);
        if scan.is(name, "result") {
            lists = Some(read_result(scan, layout)?);
        } else {
            scan.value()?;
        }
        Some(())
    })?;
    scan.finish()?;
    let lists = lists?;
    // Only trims that text can take: as returned, or the payload dropped.
    if (0..lists.len()).any(|i| !matches!(trim.request(i), PayloadTrim::AsReturned | PayloadTrim::Drop)) {
        return None;
    }
    // Every point has a valid id.
    let mut ids: Vec<Vec<PointId>> = Vec::with_capacity(lists.len());
    for list in &lists {
        let mut batch = Vec::with_capacity(list.points.len());
        for point in &list.points {
            let text = scan.slice(point.id.clone()?)?;
            batch.push(PointId::from_json(&serde_json::from_str::<serde_json::Value>(text).ok()?)?);
        }
        ids.push(batch);
    }

    // Judge every point, in order.
    let mut masks: Vec<Vec<bool>> = Vec::with_capacity(lists.len());
    for (list, batch) in lists.iter().zip(&ids) {
        let mask = list
            .points
            .iter()
            .zip(batch)
            .map(|(point, id)| {
                let payload = match &point.payload {
                    Payload::Object(members) => Some(members),
                    Payload::Absent | Payload::Null => None,
                };
                judge.admits(id, &RawNestedPayload::new(&scan, payload, prefix))
            })
            .collect();
        masks.push(mask);
    }
    let stripped = masks.iter().flatten().filter(|keep| !**keep).count();
    if stripped == 0 && trim.is_nothing() {
        return Some(Filtered { body: FilteredBody::Unchanged, stripped, returned: None });
    }

    let text = scan.text();
    let raw = |range: &Range<usize>| text.get(range.clone()).unwrap_or_default();
    let mut edits = Vec::new();
    for (i, (list, mask)) in lists.iter().zip(&masks).enumerate() {
        let drop_payload = matches!(trim.request(i), PayloadTrim::Drop);
        if !drop_payload && mask.iter().all(|keep| *keep) {
            continue;
        }
        let mut out = Vec::with_capacity(list.range.len());
        out.push(b'[');
        for (point, _) in list.points.iter().zip(mask).filter(|(_, keep)| **keep) {
            if out.len() > 1 {
                out.push(b',');
            }
            if drop_payload {
                out.push(b'{');
                let mut first = true;
                for (name, member) in point.members.iter().filter(|(name, _)| !scan.is(*name, "payload")) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(raw(&(name.start - 1..name.end + 1)).as_bytes());
                    out.push(b':');
                    out.extend_from_slice(raw(member).as_bytes());
                }
                out.push(b'}');
            } else {
                out.extend_from_slice(raw(&point.range).as_bytes());
            }
        }
        out.push(b']');
        edits.push((list.range.clone(), out));
    }
    let body = splice(body, &edits)?;
    Some(Filtered { body: FilteredBody::Spliced(body), stripped, returned: None })
}

/// `R.attr` of one point, read from its payload's text: the object at the dotted prefix
/// inside the payload (as [`super::NestedPayload`] reads a parsed one).
struct RawNestedPayload<'a, 'b> {
    scan: &'a Scan<'b>,
    object: Option<Cow<'a, Members>>,
}

impl<'a, 'b> RawNestedPayload<'a, 'b> {
    fn new(scan: &'a Scan<'b>, payload: Option<&'a Members>, prefix: &str) -> RawNestedPayload<'a, 'b> {
        let mut object = payload.map(Cow::Borrowed);
        for segment in prefix.split('.').filter(|s| !s.is_empty()) {
            object = object.and_then(|members| {
                let range = members.get(scan, segment)?;
                if scan.slice(range.clone())?.starts_with('{') {
                    Members::read(&mut scan.at(range.start)).map(Cow::Owned)
                } else {
                    None
                }
            });
        }
        RawNestedPayload { scan, object }
    }
}

impl RecordAttributes for RawNestedPayload<'_, '_> {
    fn get(&self, name: &str) -> Option<Value> {
        let range = self.object.as_ref()?.get(self.scan, name)?;
        attribute_text::value_of(self.scan.slice(range)?)
    }

    fn all(&self) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        for (key, range) in self.object.as_ref().map_or(&[][..], |m| &m.entries) {
            let (Some(key), Some(value)) = (self.scan.decoded(*key), self.scan.slice(range.clone()).and_then(attribute_text::value_of)) else {
                continue;
            };
            attr.insert(key.into_owned(), value);
        }
        attr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::qdrant::database::{filter_parsed, Then};
    use crate::backends::testkit::RecordingJudge;
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    /// The shared recording judge, asking for every attribute of some hits.
    fn recorder() -> RecordingJudge {
        RecordingJudge::new(|id| id.ends_with('1'))
    }

    fn point() -> impl Strategy<Value = Json> {
        let id = prop_oneof![
            18 => (0u64..30).prop_map(Json::from),
            1 => Just(json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")),
            1 => Just(json!("{5C56C793-69F3-4FBF-87E6-C4BF54C28C21}")),
            1 => prop::sample::select(vec![json!(-1), json!(1.5), json!("12")]),
        ];
        let value = prop_oneof![
            prop::sample::select(vec!["FINANCE", "HR", "FI\"N"]).prop_map(Json::from),
            any::<i16>().prop_map(Json::from),
            Just(Json::Null),
            Just(json!({"a": [1, 2]})),
        ];
        let metadata = prop::collection::btree_map(prop::sample::select(vec!["department", "region", "page"]), value, 0..4)
            .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        let payload = prop_oneof![
            12 => (metadata, "[a-z ]{0,10}").prop_map(|(m, text)| json!({"metadata": m, "page_content": text})),
            1 => Just(Json::Null),
            1 => Just(json!({"metadata": "not an object"})),
            1 => Just(json!([1])),
        ];
        (id, prop::option::weighted(0.9, payload), any::<bool>(), 0.0f64..1.0).prop_map(|(id, payload, vector, score)| {
            let mut p = serde_json::Map::new();
            p.insert("id".into(), id);
            p.insert("version".into(), json!(3));
            p.insert("score".into(), json!(score));
            if let Some(payload) = payload {
                p.insert("payload".into(), payload);
            }
            if vector {
                p.insert("vector".into(), json!([0.25, -1.5e-3]));
            }
            Json::Object(p)
        })
    }

    fn answer(op: Operation) -> impl Strategy<Value = Vec<u8>> {
        let batch = prop::collection::vec(point(), 0..6);
        (prop::collection::vec(batch, 1..4), 0u8..12, any::<prop::sample::Index>(), any::<bool>()).prop_map(move |(batches, damage, at, pretty)| {
            let list = |b: &Vec<Json>| Json::Array(b.clone());
            let result = match layout(op) {
                Some(Layout::Points) => json!({"points": list(&batches[0]), "next_page_offset": null}),
                Some(Layout::List) => list(&batches[0]),
                Some(Layout::BatchPoints) => Json::Array(batches.iter().map(|b| json!({"points": list(b)})).collect()),
                _ => Json::Array(batches.iter().map(list).collect()),
            };
            let mut answer = json!({"result": result, "status": "ok", "time": 0.002});
            match damage {
                0 => answer["result"] = json!("x"),
                1 => answer = json!({"status": "ok"}),
                _ => {}
            }
            let mut bytes = if pretty { serde_json::to_vec_pretty(&answer).unwrap() } else { serde_json::to_vec(&answer).unwrap() };
            if damage == 2 {
                let i = at.index(bytes.len());
                bytes[i] = b"\"[]{},:x\\"[i % 9];
            }
            bytes
        })
    }

    fn trims() -> impl Strategy<Value = Trim> {
        let one = prop_oneof![
            6 => Just(PayloadTrim::AsReturned),
            4 => Just(PayloadTrim::Drop),
            1 => Just(PayloadTrim::Include(vec!["metadata.page".into()])),
        ];
        (prop::collection::vec(one, 0..3), prop::option::of(Just(PayloadTrim::Drop)))
            .prop_map(|(requests, lookup)| Trim { requests, lookup: lookup.unwrap_or_default() })
    }

    const OPS: [Operation; 9] = [
        Operation::QueryPoints,
        Operation::ScrollPoints,
        Operation::SearchPoints,
        Operation::RecommendPoints,
        Operation::DiscoverPoints,
        Operation::QueryBatchPoints,
        Operation::SearchBatchPoints,
        Operation::RecommendBatchPoints,
        Operation::DiscoverBatchPoints,
    ];

    fn then(op: Operation, trim: &Trim, prefix: &str) -> Then {
        Then { op, trim: trim.clone(), prefix: prefix.to_string(), lookups: Vec::new(), point_id: None }
    }

    proptest! {
        /// The byte-range filter removes what the tree filter removes, judges the same points
        /// with the same attributes, and writes a body that means the same JSON; where it
        /// does not answer, it has judged nothing.
        #[test]
        fn byte_ranges_filter_as_the_tree_does(
            (op, bytes) in prop::sample::select(OPS.to_vec()).prop_flat_map(|op| (Just(op), answer(op))),
            trim in trims(),
            prefix in prop::sample::select(vec!["metadata.", "", "metadata"]),
        ) {
            let mut fast_judge = recorder();
            let Some(fast) = filter(op, &trim, prefix, &bytes, &mut fast_judge) else {
                prop_assert!(fast_judge.asked.is_empty());
                return Ok(());
            };
            let mut tree_judge = recorder();
            let tree = filter_parsed(then(op, &trim, prefix), &bytes, &mut tree_judge);
            let Ok(tree) = tree else {
                prop_assert!(false, "the tree path refused what the fast path read: {:?}\n{}", tree.err(), String::from_utf8_lossy(&bytes));
                return Ok(());
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
        }
    }

    #[test]
    fn the_usual_answers_take_the_fast_path() {
        let points: Vec<Json> = (0..4)
            .map(|i| json!({"id": i, "version": 1, "score": 0.5, "payload": {"page_content": "text", "metadata": {"department": if i == 2 { "HR" } else { "FINANCE" }}}}))
            .collect();
        let bytes = serde_json::to_vec(&json!({"result": {"points": points}, "status": "ok", "time": 0.001})).unwrap();
        let filtered = filter(Operation::QueryPoints, &Trim::default(), "metadata.", &bytes, &mut recorder()).unwrap();
        assert_eq!(filtered.stripped, 1);
        let FilteredBody::Spliced(text) = filtered.body else { panic!("expected a spliced body") };
        let out: Json = serde_json::from_slice(&text).unwrap();
        let ids: Vec<&Json> = out["result"]["points"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
        assert_eq!(ids, [&json!(0), &json!(1), &json!(3)]);
        let drop = Trim { requests: vec![PayloadTrim::Drop], lookup: PayloadTrim::AsReturned };
        let filtered = filter(Operation::QueryPoints, &drop, "metadata.", &bytes, &mut recorder()).unwrap();
        let FilteredBody::Spliced(text) = filtered.body else { panic!("expected a spliced body") };
        let out: Json = serde_json::from_slice(&text).unwrap();
        assert!(out["result"]["points"].as_array().unwrap().iter().all(|p| p.get("payload").is_none()));
    }
}
