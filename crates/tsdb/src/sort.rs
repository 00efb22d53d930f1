//! Fast ordering of label sets for sorted selects.
//!
//! [`Labels`]' buffer is canonical (`uvarint(len) bytes` for each name and
//! value, names ascending; see `ember_model::labels`). Bytes before the
//! first difference of two buffers belong to identical pairs, so the
//! comparison can skip straight to the pair holding the first differing
//! byte instead of decoding every pair from the start. The result equals
//! `Labels::cmp` (property-tested below).

use std::cmp::Ordering;

use ember_model::Labels;

fn uvarint(b: &[u8], pos: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let x = *b.get(*pos)?;
        *pos += 1;
        n |= ((x & 0x7f) as usize) << shift;
        if x < 0x80 {
            return Some(n);
        }
        shift += 7;
    }
}

fn field<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let n = uvarint(b, pos)?;
    let s = b.get(*pos..*pos + n)?;
    *pos += n;
    Some(s)
}

fn pair<'a>(b: &'a [u8], pos: &mut usize) -> Option<(&'a [u8], &'a [u8])> {
    if *pos >= b.len() {
        return None;
    }
    Some((field(b, pos)?, field(b, pos)?))
}

fn common_prefix(x: &[u8], y: &[u8]) -> usize {
    let n = x.len().min(y.len());
    let mut i = 0;
    // Eight bytes at a time: the first differing byte is the lowest set
    // byte of the XOR of little-endian words.
    while i + 8 <= n {
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        a.copy_from_slice(&x[i..i + 8]);
        b.copy_from_slice(&y[i..i + 8]);
        let d = u64::from_le_bytes(a) ^ u64::from_le_bytes(b);
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && x[i] == y[i] {
        i += 1;
    }
    i
}

/// Same order as `Labels::cmp` (Prometheus's `labels.Compare`).
pub fn cmp_labels(a: &Labels, b: &Labels) -> Ordering {
    cmp_encoded(a.as_bytes(), b.as_bytes())
}

/// [`cmp_labels`] on encoded buffers.
pub fn cmp_encoded(x: &[u8], y: &[u8]) -> Ordering {
    let p = common_prefix(x, y);
    if p == x.len() && p == y.len() {
        return Ordering::Equal;
    }
    // Find the start of the pair containing byte `p`; pairs ending at or
    // before `p` are identical in both buffers.
    let mut start = 0;
    loop {
        let mut end = start;
        if pair(x, &mut end).is_none() || end > p {
            break;
        }
        start = end;
    }
    let (mut i, mut j) = (start, start);
    loop {
        match (pair(x, &mut i), pair(y, &mut j)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((n1, v1)), Some((n2, v2))) => {
                let c = n1.cmp(n2).then_with(|| v1.cmp(v2));
                if c != Ordering::Equal {
                    return c;
                }
            }
        }
    }
}

/// Appends an order-preserving key for `labels` to `out`: comparing two
/// keys bytewise gives the same order as comparing the label sets. Each
/// name and value is written with NUL escaped as `00 ff` and terminated by
/// `00 01`; the set ends with `00 00`. A terminator sorts before any byte of
/// a longer string (shorter prefix first) and the set's end before any
/// further pair (shorter set first).
fn push_sort_key(labels: &Labels, out: &mut Vec<u8>) {
    for l in labels.iter() {
        for s in [l.name, l.value] {
            // Copy runs between NULs whole; NULs are rare.
            for (i, run) in s.as_bytes().split(|&c| c == 0).enumerate() {
                if i > 0 {
                    out.extend_from_slice(&[0, 0xff]);
                }
                out.extend_from_slice(run);
            }
            out.extend_from_slice(&[0, 1]);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Sorts items by their label sets. Keys are built once into one
/// contiguous buffer: with many series spread over the heap, chasing
/// pointers and decoding pairs during the O(n log n) comparisons costs far
/// more than one pass that copies, and the comparisons become `memcmp`.
pub fn sort_by_labels<T>(items: &mut Vec<T>, labels: impl Fn(&T) -> &Labels) {
    if items.len() < 2 {
        return;
    }
    // Keys are about as long as the encoded labels plus 4 bytes a label.
    let estimate = labels(&items[0]).byte_size() + 64;
    let mut arena: Vec<u8> = Vec::with_capacity(items.len() * estimate);
    let mut keys: Vec<(usize, usize, usize)> = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let start = arena.len();
        push_sort_key(labels(it), &mut arena);
        keys.push((start, arena.len(), i));
    }
    keys.sort_unstable_by(|a, b| arena[a.0..a.1].cmp(&arena[b.0..b.1]));
    // Apply the permutation.
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    for (_, _, i) in keys {
        if let Some(x) = slots[i].take() {
            items.push(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::vec(("[a-c\0]{0,3}", "[a-c\u{e9}\0]{0,3}|x{120,140}"), 0..4)
            .prop_map(|pairs| Labels::from_pairs(&pairs))
    }

    proptest! {
        #[test]
        fn agrees_with_labels_cmp(a in labels_strategy(), b in labels_strategy()) {
            prop_assert_eq!(cmp_labels(&a, &b), a.cmp(&b));
            prop_assert_eq!(cmp_labels(&b, &a), b.cmp(&a));
            prop_assert_eq!(cmp_labels(&a, &a), Ordering::Equal);
        }

        #[test]
        fn sort_matches_std_sort(mut v in proptest::collection::vec(labels_strategy(), 0..30)) {
            let mut want = v.clone();
            want.sort();
            sort_by_labels(&mut v, |l| l);
            prop_assert_eq!(v, want);
        }
    }

    #[test]
    fn prefix_and_name_boundaries() {
        let a = Labels::from_pairs(&[("a", "b")]);
        let b = Labels::from_pairs(&[("a", "b"), ("c", "d")]);
        let c = Labels::from_pairs(&[("a", "bc")]);
        let d = Labels::from_pairs(&[("ab", "")]);
        for (x, y) in [(&a, &b), (&a, &c), (&b, &c), (&c, &d), (&a, &d)] {
            assert_eq!(cmp_labels(x, y), x.cmp(y), "{x} vs {y}");
            assert_eq!(cmp_labels(y, x), y.cmp(x), "{y} vs {x}");
        }
    }
}
