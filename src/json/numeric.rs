//! JSON's number grammar, byte by byte, for the lists of numbers vecgate keeps as the
//! client's text ([`super::kept`]): a flat list `[n, n, …]` is validated here without
//! converting a single number.
//!
//! A number is accepted only where the strict parser would accept it too: RFC 8259's grammar,
//! and no literal that could overflow `f64` (serde_json refuses those). Literals near that
//! edge are not judged here at all: the list is then left to the strict parser.

/// Decimal digits beyond which a number is left to serde_json, which refuses literals that
/// overflow `f64`; below it no literal can.
const SAFE_MAGNITUDE_DIGITS: usize = 300;

/// A flat list of numbers starting at `b[i]` (`[` n, … `]`, JSON whitespace anywhere between
/// tokens): the index after its `]` and how many numbers it holds. `None` if anything else
/// is there, or a number is at the edge of `f64`.
///
/// The inner loop of the fast path, so it works on a plain index and looks for whitespace
/// only where a byte is not the token expected next (a list written without spaces costs
/// one comparison per separator).
pub(super) fn number_list(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if *b.get(i)? != b'[' {
        return None;
    }
    let mut i = whitespace(b, i + 1);
    if *b.get(i)? == b']' {
        return Some((i + 1, 0));
    }
    let mut items = 0;
    loop {
        i = number(b, i)?;
        items += 1;
        let mut next = *b.get(i)?;
        if is_whitespace(next) {
            i = whitespace(b, i);
            next = *b.get(i)?;
        }
        match next {
            b',' => {
                i += 1;
                if is_whitespace(*b.get(i)?) {
                    i = whitespace(b, i);
                }
            }
            b']' => return Some((i + 1, items)),
            _ => return None,
        }
    }
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
pub(super) fn whitespace(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&byte| is_whitespace(byte)) {
        i += 1;
    }
    i
}

/// One number at `b[i]` as RFC 8259 spells it,
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; the index after it.
#[inline(always)]
pub(super) fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let integer_start = i;
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i + 1),
        _ => return None,
    };
    let integer = i - integer_start;
    if b.get(i) == Some(&b'.') {
        let fraction = i + 1;
        i = digits(b, fraction);
        if i == fraction {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        return exponent(b, i + 1, integer);
    }
    (integer <= SAFE_MAGNITUDE_DIGITS).then_some(i)
}

/// The exponent of a number whose integer part has `integer` digits, from just after its
/// `e`; the index after it. Kept out of line: vectors rarely have exponents.
#[inline(never)]
fn exponent(b: &[u8], mut i: usize, integer: usize) -> Option<usize> {
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let start = i;
    i = digits(b, start);
    let count = i - start;
    if count == 0 || count > 3 {
        return None;
    }
    let exponent = if negative {
        0
    } else {
        b.get(start..i)?.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'))
    };
    (integer + exponent <= SAFE_MAGNITUDE_DIGITS).then_some(i)
}

/// The index after the run of ASCII digits starting at `b[i]`: eight bytes at a time (a
/// digit's high nibble is 3, and stays 3 after adding 6), the run's end found in the first
/// word that holds another byte; the last few bytes of `b` one by one.
///
/// In that word, the lowest byte that is not a digit is exactly the lowest byte whose nibble
/// pair is not `3,3`: adding 6 carries out of a byte only if it is 0xFA or above, which is
/// itself not a digit, so no byte below the first non-digit receives a carry.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    const THREES: u64 = 0x3333_3333_3333_3333;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let word = u64::from_le_bytes(chunk);
        let others = ((word & HIGH_NIBBLES) | ((word.wrapping_add(SIXES) & HIGH_NIBBLES) >> 4)) ^ THREES;
        if others != 0 {
            // Little-endian: the lowest set bit is in the first byte that is not a digit.
            return i + (others.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(text: &str) -> Option<(String, usize)> {
        number_list(text.as_bytes(), 0).map(|(end, items)| (text[..end].to_string(), items))
    }

    #[test]
    fn digit_runs_end_at_the_first_other_byte() {
        for stop in 0..20 {
            for other in [b'/', b':', b' ', b'.', b'e', b'a', 0x00, 0x7f, 0xfa, 0xff] {
                let mut text = b"0123456789012345678901234".to_vec();
                text[stop] = other;
                assert_eq!(digits(&text, 0), stop, "{other:#x} at {stop}");
                assert_eq!(digits(&text[..stop], 0), stop);
            }
        }
        assert_eq!(digits(b"12", 5), 5);
    }

    #[test]
    fn reads_flat_lists_of_numbers() {
        assert_eq!(listed("[1,2.5,-0.5e-3] x"), Some(("[1,2.5,-0.5e-3]".into(), 3)));
        assert_eq!(listed("[ 1 ,\n2\t]"), Some(("[ 1 ,\n2\t]".into(), 2)));
        assert_eq!(listed("[]"), Some(("[]".into(), 0)));
        assert_eq!(listed("[ ]"), Some(("[ ]".into(), 0)));
        assert_eq!(listed("[1 ] "), Some(("[1 ]".into(), 1)));
        assert_eq!(listed("[1e5 ,\r\n2E+2\t,3e-7]"), Some(("[1e5 ,\r\n2E+2\t,3e-7]".into(), 3)));
        assert_eq!(listed("[-0.25,0,-0]"), Some(("[-0.25,0,-0]".into(), 3)));
        // Large but finite literals are read.
        assert!(listed("[1e299, -2.5E-300, 123456789012345678901234567890]").is_some());
    }

    #[test]
    fn leaves_anything_else_to_the_strict_parser() {
        for text in [
            "[[1]]", r#"["1"]"#, "[1,]", "[01]", "[1.]", "[.5]", "[+1]", "[1e]", "[1e999]", "[1e300]",
            "[NaN]", "[1", "[1 2]", "[-]", "[true]", "null", "[1e1000]", "[1 , ]", "[1,,2]", "[1 ", "[1,",
            "[1e+]", "[1E-1234]", "[--1]", "[1.5.2]", "[0x1]", "[1e5e5]",
        ] {
            assert_eq!(listed(text), None, "{text}");
        }
    }
}
