//! Where a body's vectors are, and the scan that finds them.
//!
//! A database module describes, per operation, the places in its request bodies that hold
//! vectors ([`Place`]); nothing in vecgate reads a vector's numbers, only that it is one.
//! [`vector_ranges`] walks a body along that description and returns the byte range of every
//! flat list of numbers at a vector place, each already validated by the number grammar of
//! [`super::numeric`].
//!
//! The walk is lenient about everything it does not keep: it tracks only strings and
//! nesting, and anything unexpected ends it with `None` (the strict parser then decides
//! alone). It never decides whether a body is acceptable; [`super::kept`] checks, after the
//! strict parse, that every range it found was a value where the walk said it was.

use super::numeric::{number_list, whitespace};

/// A place in a body, as a pattern over its structure.
#[derive(Debug)]
pub enum Place {
    /// An object: the members named here are at these places; other members hold no vectors.
    Object(&'static [(&'static str, &'static Place)]),
    /// A list: every item is at this place.
    Each(&'static Place),
    /// An object: every member is at this place (named vectors, a column per name).
    Members(&'static Place),
    /// By the value's kind: a list is at `list`, an object at `object`.
    ListOr { list: &'static Place, object: &'static Place },
    /// A vector: a flat list of numbers is kept as text. Inside a list of lists (a
    /// multivector) or an object (named vectors, a sparse vector's `indices` and `values`, a
    /// named vector's `vector`), every flat list of numbers is kept too.
    Vector,
}

impl Place {
    /// An object with this place, or a list of such objects.
    pub const fn one_or_each(place: &'static Place, each: &'static Place) -> Place {
        Place::ListOr { list: each, object: place }
    }
}

/// How deep vectors may nest inside one vector place (a multivector is two levels).
const VECTOR_NESTING: usize = 4;

/// The byte ranges, `[` to `]` inclusive and in document order, of every non-empty flat list
/// of numbers at a vector place of `root`. `None`: the walk met something it does not
/// follow (the strict parser will see it), or the body nests deeper than `max_depth`.
pub(super) fn vector_ranges(bytes: &[u8], root: &Place, max_depth: usize) -> Option<Vec<(usize, usize)>> {
    let mut walk = Walk { b: bytes, at: whitespace(bytes, 0), ranges: Vec::new(), max_depth };
    walk.value(root, 0)?;
    Some(walk.ranges)
}

struct Walk<'b> {
    b: &'b [u8],
    at: usize,
    ranges: Vec<(usize, usize)>,
    max_depth: usize,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        self.at = whitespace(self.b, self.at);
    }

    /// The value at `self.at`, at `place`; leaves `self.at` after it.
    fn value(&mut self, place: &Place, depth: usize) -> Option<()> {
        if depth > self.max_depth {
            return None;
        }
        match (place, self.peek()?) {
            (Place::Object(members), b'{') => self.object(depth, |walk, name, depth| {
                match members.iter().find(|(n, _)| n.as_bytes() == name) {
                    Some((_, place)) => walk.value(place, depth),
                    None => walk.skip(),
                }
            }),
            (Place::Members(inner), b'{') => self.object(depth, |walk, _, depth| walk.value(inner, depth)),
            (Place::Each(inner), b'[') => self.list(depth, |walk, depth| walk.value(inner, depth)),
            (Place::ListOr { list, .. }, b'[') => self.value(list, depth),
            (Place::ListOr { object, .. }, b'{') => self.value(object, depth),
            (Place::Vector, b'[' | b'{') => self.vector(depth, 0),
            _ => self.skip(),
        }
    }

    /// A vector place's value: a flat list of numbers is recorded, anything else is walked
    /// for the flat lists of numbers inside it.
    fn vector(&mut self, depth: usize, nesting: usize) -> Option<()> {
        if depth > self.max_depth {
            return None;
        }
        if nesting > VECTOR_NESTING {
            return self.skip();
        }
        let inner = |walk: &mut Self, depth| match walk.peek() {
            Some(b'[' | b'{') => walk.vector(depth, nesting + 1),
            _ => walk.skip(),
        };
        match self.peek()? {
            b'[' => {
                if let Some((end, items)) = number_list(self.b, self.at) {
                    if items > 0 {
                        self.ranges.push((self.at, end));
                    }
                    self.at = end;
                    return Some(());
                }
                self.list(depth, inner)
            }
            b'{' => self.object(depth, |walk, _, depth| inner(walk, depth)),
            _ => self.skip(),
        }
    }

    /// `{` "name": value, … `}`, each member's value read by `member` (given the name as
    /// written: one spelled with escapes matches no place).
    fn object(&mut self, depth: usize, mut member: impl FnMut(&mut Self, &[u8], usize) -> Option<()>) -> Option<()> {
        let b = self.b;
        self.at += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let (start, end) = self.string()?;
            let name = b.get(start..end)?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.ws();
            member(self, name, depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[` item, … `]`, each item read by `item`.
    fn list(&mut self, depth: usize, mut item: impl FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        self.at += 1;
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self, depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string's content range, between its quotes (escapes left as they are).
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        loop {
            match *self.b.get(i)? {
                b'"' => {
                    self.at = i + 1;
                    return Some((start, i));
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
    }

    /// Steps over any value, tracking only strings and nesting.
    fn skip(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'[' | b'{' => {
                    depth += 1;
                    self.at += 1;
                }
                b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' if depth == 0 => return Some(()),
                _ => self.at += 1,
            }
            if depth == 0 && matches!(self.peek(), Some(b',' | b'}' | b']')) {
                return Some(());
            }
        }
    }
}
