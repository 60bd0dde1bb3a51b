//! Header values that change per response, made without an allocation each.
//!
//! A fresh `HeaderValue` copies its bytes into a new allocation. Values here are carved
//! instead from a per-thread buffer (one allocation per few hundred values; each value
//! holds a reference to its chunk, which is freed when the last value made from it is
//! dropped), and small numbers come from a table of ready-made values.

use std::cell::RefCell;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// Size of one per-thread chunk.
const CHUNK: usize = 4096;
/// Values longer than this are allocated on their own, so a chunk never holds few of them.
const MAX_CARVED: usize = 256;

thread_local! {
    static CHUNK_BUF: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A header value of the concatenation of `parts`, or `None` if it is not a valid value.
pub(crate) fn concat(parts: &[&[u8]]) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(carve(parts, MAX_CARVED)).ok()
}

/// The concatenation of `parts` as `Bytes` carved from the per-thread chunk (no
/// allocation of its own), or allocated on its own when longer than `max`.
pub(crate) fn carve(parts: &[&[u8]], max: usize) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > max.min(CHUNK) {
        return Bytes::from(parts.concat());
    }
    let carved = CHUNK_BUF.try_with(|cell| {
        // Never contended (one thread, no re-entry); if it were, fall back below.
        let mut buf = cell.try_borrow_mut().ok()?;
        if buf.capacity() - buf.len() < len {
            *buf = BytesMut::with_capacity(CHUNK);
        }
        for p in parts {
            buf.put_slice(p);
        }
        Some(buf.split().freeze())
    });
    match carved {
        Ok(Some(bytes)) => bytes,
        // During thread teardown, or on the impossible re-entry.
        _ => Bytes::from(parts.concat()),
    }
}

/// `prefix`, then `a`, `mid`, `b` in decimal: `"burst";r=3;t=1` in one value.
pub(crate) fn with_numbers(prefix: &[u8], a: u64, mid: &[u8], b: u64) -> Option<HeaderValue> {
    let mut ia = itoa::Buffer::new();
    let mut ib = itoa::Buffer::new();
    concat(&[
        prefix,
        ia.format(a).as_bytes(),
        mid,
        ib.format(b).as_bytes(),
    ])
}

/// [`with_numbers`] for values that tend to repeat (those of denials): the last one made
/// on this thread is shared when it has the same bytes.
pub(crate) fn with_numbers_repeated(
    prefix: &[u8],
    a: u64,
    mid: &[u8],
    b: u64,
) -> Option<HeaderValue> {
    let mut ia = itoa::Buffer::new();
    let mut ib = itoa::Buffer::new();
    concat_cached(
        &LAST_WITH_NUMBERS,
        &[
            prefix,
            ia.format(a).as_bytes(),
            mid,
            ib.format(b).as_bytes(),
        ],
    )
}

/// The last value (`T`) each caller made on this thread: consecutive 429s of a client
/// over its quota carry the same body and values (`r=0;t=<wait>`) for a whole second.
pub(crate) type Last<T> = std::thread::LocalKey<RefCell<Option<T>>>;

thread_local! {
    static LAST_WITH_NUMBERS: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
    static LAST_NUMBER: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
}

/// The value `last` holds if it has exactly `bytes` (compared, never assumed), else
/// `make(bytes)`, which becomes `last` (best effort: none is kept during thread teardown
/// or on re-entry).
#[inline]
pub(crate) fn reuse_last<T: Clone + AsRef<[u8]>, E>(
    last: &'static Last<T>,
    bytes: &[u8],
    make: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, E> {
    let hit = last.try_with(|cell| {
        let cached = cell.try_borrow().ok()?;
        cached.as_ref().filter(|c| c.as_ref() == bytes).cloned()
    });
    if let Ok(Some(value)) = hit {
        return Ok(value);
    }
    let value = make(bytes)?;
    let _ = last.try_with(|cell| {
        if let Ok(mut cached) = cell.try_borrow_mut() {
            *cached = Some(value.clone());
        }
    });
    Ok(value)
}

/// [`concat`], reusing `last` when it holds exactly these bytes.
fn concat_cached(last: &'static Last<HeaderValue>, parts: &[&[u8]]) -> Option<HeaderValue> {
    // Assembled on the stack, so the comparison is one `memcmp`.
    let mut buf = [0u8; 64];
    let mut len = 0;
    for p in parts {
        let end = len + p.len();
        let Some(dst) = buf.get_mut(len..end) else {
            return concat(parts);
        };
        dst.copy_from_slice(p);
        len = end;
    }
    reuse_last(last, &buf[..len], |bytes| concat(&[bytes]).ok_or(())).ok()
}

/// How many small numbers are kept as ready-made values.
const SMALL: usize = 1024;

/// `HeaderValue`s for 0..SMALL over one static string: cloning them copies a pointer.
static NUMBERS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    let mut all = String::new();
    let mut ends = Vec::with_capacity(SMALL);
    for n in 0..SMALL {
        all.push_str(itoa::Buffer::new().format(n));
        ends.push(all.len());
    }
    // One string for the life of the process, so the values can be `from_static`.
    let all: &'static str = Box::leak(all.into_boxed_str());
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let v = HeaderValue::from_static(&all[start..end]);
            start = end;
            v
        })
        .collect()
});

/// `n` as a header value, without an allocation of its own.
pub(crate) fn number(n: u64) -> HeaderValue {
    match usize::try_from(n) {
        Ok(i) if i < SMALL => NUMBERS[i].clone(),
        _ => concat_cached(&LAST_NUMBER, &[itoa::Buffer::new().format(n).as_bytes()])
            .unwrap_or_else(|| n.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_as_http_does() {
        for n in [0u64, 1, 9, 10, 99, 1023, 1024, 65_536, u64::MAX] {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn carved_values_are_independent_across_chunks() {
        // Enough values to fill several chunks: each keeps its own bytes.
        let values: Vec<_> = (0..2_000u64)
            .map(|i| with_numbers(b"\"burst\";r=", i, b";t=", i * 7).expect("valid"))
            .collect();
        for (i, v) in values.iter().enumerate() {
            let i = i as u64;
            assert_eq!(
                v.as_bytes(),
                format!("\"burst\";r={i};t={}", i * 7).as_bytes()
            );
        }
    }

    #[test]
    fn cached_values_are_reused_only_for_the_same_bytes() {
        let a = with_numbers_repeated(b"\"a\";r=", 0, b";t=", 3600).expect("valid");
        let b = with_numbers_repeated(b"\"a\";r=", 0, b";t=", 3600).expect("valid");
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr(), "shared");
        // Same length, other bytes; a prefix of the cached value; a longer one.
        for (prefix, r, t) in [
            (&b"\"b\";r="[..], 0, 3600),
            (&b"\"a\";r="[..], 0, 360),
            (&b"\"a\";r="[..], 0, 36000),
            (&b"\"a\";r="[..], 1, 3600),
        ] {
            let v = with_numbers_repeated(prefix, r, b";t=", t).expect("valid");
            let want = [prefix, format!("{r};t={t}").as_bytes()].concat();
            assert_eq!(v.as_bytes(), &want[..]);
        }
        assert_eq!(number(3600), "3600");
        assert_eq!(number(3601), "3601");
        assert_eq!(number(3600), "3600");
    }

    #[test]
    fn long_and_invalid_values() {
        let long = vec![b'x'; 1000];
        let v = concat(&[&long, b"1"]).expect("valid");
        assert_eq!(v.len(), 1001);
        assert!(concat(&[b"a\nb"]).is_none());
        // A refused value leaves nothing behind for the next one.
        assert_eq!(concat(&[b"ok"]).expect("valid"), "ok");
    }
}
