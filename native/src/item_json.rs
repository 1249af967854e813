//! model.py's `encode_item` compiled: the Item's JSON as json.dumps(ensure_ascii=False,
//! separators=(",", ":")) writes it, straight into UTF-8 bytes. None when a text is not a
//! str holding only characters UTF-8 can carry (model.py's Python encoding then decides).
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// The keys in encode_item's order, "schema" first (its value written by the caller).
const KEYS: [&str; 11] = [
    "item_id", "feed_id", "source", "url", "guid", "title", "summary", "language",
    "published_at", "fetched_at", "content_hash",
];

/// `json.encoder.encode_basestring(text)` (ensure_ascii=False) appended as UTF-8.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let b = text.as_bytes();
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < b.len() {
        // eight bytes at a time while none needs escaping (most of a text)
        if let Some(chunk) = b.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]))) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        i += 1;
        let escaped: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[run..i - 1]);
        run = i;
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.extend_from_slice(escaped);
        }
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `x` is below 0x20, a '"' or a '\\' (bit tricks: a
/// byte of `y` is zero where `y - 0x01..` borrows into its top bit and `y` had it clear).
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |y: u64| y.wrapping_sub(ONES) & !y & TOPS != 0;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & TOPS != 0;
    below_space || zero_in(x ^ (ONES * u64::from(b'"'))) || zero_in(x ^ (ONES * u64::from(b'\\')))
}

/// The Item's JSON: `schema`, then the 11 texts (None: null) under KEYS, then `backlog`.
#[pyfunction]
pub fn item_json<'py>(
    py: Python<'py>,
    schema: i64,
    texts: Vec<Bound<'py, PyAny>>,
    backlog: Bound<'py, PyAny>,
) -> Option<Bound<'py, PyBytes>> {
    let backlog = backlog.is_truthy().ok()?; // model.py: "true" if item.backlog else "false"
    if texts.len() != KEYS.len() {
        return None;
    }
    let mut strs: [Option<&str>; 11] = [None; 11];
    let mut size = 200;
    for (slot, value) in strs.iter_mut().zip(&texts) {
        if value.is_none() {
            continue;
        }
        let text = value.cast::<PyString>().ok()?.to_str().ok()?; // lone surrogates: None
        size += text.len() + text.len() / 8;
        *slot = Some(text);
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(format!("{{\"schema\":{schema}").as_bytes());
    for (key, text) in KEYS.iter().zip(strs) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        match text {
            Some(text) => push_json_string(&mut out, text),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(if backlog { b",\"backlog\":true}" } else { b",\"backlog\":false}" });
    Some(PyBytes::new(py, &out))
}
