//! Problems and where they are: a sink that collects problems with a YAML path, and the serde
//! probes that turn a path into a line and column, find duplicate keys and unknown keys.

use super::problem::{Problem, ProblemKind};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::Value as YValue;
use std::collections::HashMap;
use std::fmt;



/// A step in a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, e.g. `resourcePolicy.rules[2].condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct YPath(pub(super) Vec<Seg>);

impl YPath {
    pub(super) fn k(&self, key: &str) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_string()));
        YPath(v)
    }

    pub(super) fn i(&self, index: usize) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(index));
        YPath(v)
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A document: file index and document index within the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct At {
    pub(super) file: usize,
    pub(super) doc: usize,
}

pub(super) struct Pending {
    pub(super) file: usize,
    /// Document and path to locate, when the position is not yet known.
    pub(super) locate: Option<(usize, YPath)>,
    pub(super) line: Option<usize>,
    pub(super) column: Option<usize>,
    pub(super) kind: ProblemKind,
    pub(super) reason: String,
}

#[derive(Default)]
pub(super) struct Sink {
    pub(super) pending: Vec<Pending>,
}

impl Sink {
    /// A problem at `path` in a document; its line is found later.
    pub(super) fn at(&mut self, at: At, path: &YPath, kind: ProblemKind, reason: String) {
        let reason = one_line(&reason);
        let reason = if path.0.is_empty() {
            reason
        } else {
            format!("{path}: {reason}")
        };
        self.pending.push(Pending {
            file: at.file,
            locate: Some((at.doc, path.clone())),
            line: None,
            column: None,
            kind,
            reason,
        });
    }

    pub(super) fn located(
        &mut self,
        file: usize,
        pos: Option<(usize, usize)>,
        kind: ProblemKind,
        reason: String,
    ) {
        self.pending.push(Pending {
            file,
            locate: None,
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            kind,
            reason: one_line(&reason),
        });
    }

    pub(super) fn finish(self, files: &[(String, String)]) -> Vec<Problem> {
        let mut cache: HashMap<(usize, usize, String), Option<(usize, usize)>> = HashMap::new();
        self.pending
            .into_iter()
            .map(|p| {
                let (name, text) = files
                    .get(p.file)
                    .map(|(n, t)| (n.clone(), t.as_str()))
                    .unwrap_or_default();
                let (mut line, mut column) = (p.line, p.column);
                if let Some((doc, path)) = &p.locate {
                    let pos = *cache
                        .entry((p.file, *doc, path.to_string()))
                        .or_insert_with(|| locate(text, *doc, &path.0));
                    line = pos.map(|p| p.0);
                    column = pos.map(|p| p.1);
                }
                Problem {
                    file: name,
                    line,
                    column,
                    kind: p.kind,
                    reason: p.reason,
                }
            })
            .collect()
    }
}

/// A reason on one line, so that a report has one problem per line.
pub(super) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The marker a probe uses to recognise its own error.
pub(super) const PROBE_HIT: &str = "vecgate-probe-hit";

/// Finds the line and column of the node at `path` in document `doc`: re-parses the document
/// with a visitor that fails exactly at that node, and reads the position from the error.
/// Falls back to the nearest ancestor that exists in the text (merged or aliased content may
/// not appear at its path).
pub(super) fn locate(text: &str, doc: usize, path: &[Seg]) -> Option<(usize, usize)> {
    for n in (0..=path.len()).rev() {
        let d = serde_yaml_ng::Deserializer::from_str(text).nth(doc)?;
        let prefix = path.get(..n).unwrap_or_default();
        if let Err(e) = (Probe { path: prefix }).deserialize(d) {
            if e.to_string().contains(PROBE_HIT) {
                if let Some(l) = e.location() {
                    return Some((l.line(), l.column()));
                }
            }
        }
    }
    None
}

pub(super) struct Probe<'p> {
    pub(super) path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(ProbeVisitor { path: self.path })
    }
}

pub(super) struct ProbeVisitor<'p> {
    pub(super) path: &'p [Seg],
}

impl ProbeVisitor<'_> {
    /// A scalar: the target if the path ends here; otherwise the path does not exist.
    pub(super) fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(PROBE_HIT))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for ProbeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        while let Some(key) = map.next_key::<YValue>()? {
            if matches!(first, Seg::Key(k) if key.as_str() == Some(k.as_str())) {
                return map.next_value_seed(Probe { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(n) if *n == i) {
                return seq.next_element_seed(Probe { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Walks a document and fails at the second occurrence of a repeated mapping key, so the
/// error carries that key's position.
pub(super) struct DupFinder;

impl<'de> DeserializeSeed<'de> for DupFinder {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

pub(super) struct DupVisitor;

impl<'de> Visitor<'de> for DupVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while map.next_key_seed(KeyCheck { seen: &mut seen })?.is_some() {
            map.next_value_seed(DupFinder)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DupFinder)?.is_some() {}
        Ok(())
    }
}

pub(super) struct KeyCheck<'s> {
    pub(super) seen: &'s mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for KeyCheck<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(KeyVisitor { seen: self.seen })
    }
}

pub(super) struct KeyVisitor<'s> {
    pub(super) seen: &'s mut Vec<String>,
}

impl KeyVisitor<'_> {
    pub(super) fn check<E: de::Error>(self, key: String) -> Result<(), E> {
        if self.seen.contains(&key) {
            return Err(E::custom(PROBE_HIT));
        }
        self.seen.push(key);
        Ok(())
    }
}

impl<'de> Visitor<'de> for KeyVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.check(format!("b:{v}"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.check(format!("s:{v}"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_string())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_string())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A serde_yaml_ng message without its trailing " at line N column M".
pub(super) fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) if e.location().is_some() => msg[..i].to_string(),
        _ => msg,
    }
}

pub(super) fn yaml_pos(e: &serde_yaml_ng::Error) -> Option<(usize, usize)> {
    e.location().map(|l| (l.line(), l.column()))
}

/// The kind of a schema (typed deserialization) error, from serde's wording.
pub(super) fn schema_error_kind(msg: &str) -> ProblemKind {
    if msg.contains("unknown field") {
        ProblemKind::UnknownField
    } else if msg.contains("missing field") {
        ProblemKind::MissingField
    } else if msg.contains("duplicate field") || msg.contains("duplicate entry") {
        ProblemKind::DuplicateKey
    } else {
        ProblemKind::InvalidValue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_nodes() {
        let text = "a:\n  b:\n    - x\n    - y: 1\n";
        let path = [
            Seg::Key("a".into()),
            Seg::Key("b".into()),
            Seg::Index(1),
            Seg::Key("y".into()),
        ];
        assert_eq!(locate(text, 0, &path), Some((4, 10)));
        // Missing tail falls back to the deepest existing node.
        let path = [Seg::Key("a".into()), Seg::Key("zz".into())];
        assert_eq!(locate(text, 0, &path).map(|p| p.0), Some(2));
    }
}
