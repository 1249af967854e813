//! normalize.py's `plain_text`, compiled: HTML to text (lib.rs's `bounded`), the first
//! `max_chars * 4` characters, invisible characters as spaces, whitespace folded, cut at a word
//! boundary. None when unsure (the HTML reading is, or the mojibake repair could apply: ftfy
//! is Python's); the caller then takes the Python reading.
use pyo3::prelude::*;
use pyo3::types::PyString;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

use std::sync::OnceLock;

use crate::{bounded, bulk_text_with, char_offset, entities, piece_end, py_space};

/// normalize.py's `_HTML_PIECE_CHARS`: long HTML is read in pieces until its text decides.
const PIECE_CHARS: usize = 3000;

#[pyclass(frozen)]
pub struct PlainText {
    /// normalize.py's invisible characters (Cc, Cf, Co, Cs as Python's unicodedata has
    /// them), as sorted inclusive ranges: given by Python so that both use one table.
    invisible: Vec<(u32, u32)>,
    /// For the first 2,048 code points (Latin, Greek, Cyrillic, Hebrew, Arabic...): whether
    /// the character separates words (whitespace or invisible), one bit each.
    separates: [u64; 32],
}

/// The code points `separates` holds.
const TABLED: u32 = 0x800;

#[pymethods]
impl PlainText {
    #[new]
    fn new(invisible: Vec<(u32, u32)>) -> Self {
        let mut invisible = invisible;
        invisible.sort_unstable();
        let mut reader = PlainText { invisible, separates: [0; 32] };
        for code in 0..TABLED {
            let c = char::from_u32(code).unwrap_or(' '); // surrogates: none below 0x800
            if py_space(c) || reader.invisible(c) {
                reader.separates[(code / 64) as usize] |= 1 << (code % 64);
            }
        }
        reader
    }

    /// normalize.py's `item_texts`: (title, summary, item id, content hash), or None when
    /// unsure.
    #[allow(clippy::too_many_arguments)]
    fn item_texts(
        &self,
        title: &Bound<'_, PyString>,
        summary: &Bound<'_, PyString>,
        url: Option<&Bound<'_, PyString>>,
        feed_id: &Bound<'_, PyString>,
        guid: Option<&Bound<'_, PyString>>,
        max_title: usize,
        max_summary: usize,
    ) -> Option<(String, String, Option<String>, String)> {
        if max_title == 0 || max_summary == 0 {
            return None;
        }
        let title = self.plain_text(title.to_str().ok()?, max_title)?;
        let summary = self.plain_text(summary.to_str().ok()?, max_summary)?;
        let url = url.map(|u| u.to_str()).transpose().ok()?.filter(|u| !u.is_empty());
        let guid = guid.map(|g| g.to_str()).transpose().ok()?.filter(|g| !g.is_empty());
        let item_id = match (url, guid) {
            (Some(url), _) => Some(digest(&["url", url], 32)),
            (None, Some(guid)) => Some(digest(&["guid", feed_id.to_str().ok()?, guid], 32)),
            (None, None) if !title.is_empty() => {
                let titled = format!("title:{title}");
                Some(digest(&["guid", feed_id.to_str().ok()?, &titled], 32))
            }
            (None, None) => None,
        };
        let content_hash = digest(&[&title, &summary], 16);
        Some((title, summary, item_id, content_hash))
    }

    /// `plain_text(value, max_chars)`, or None when unsure.
    fn read(&self, py: Python<'_>, value: &Bound<'_, PyString>, max_chars: usize) -> Option<String> {
        let s = value.to_str().ok()?; // lone surrogates: Python's reading
        if max_chars == 0 {
            return None;
        }
        if s.len() < 4096 {
            return self.plain_text(s, max_chars); // releasing the GIL costs more
        }
        py.detach(|| self.plain_text(s, max_chars))
    }
}

impl PlainText {
    fn plain_text(&self, value: &str, max_chars: usize) -> Option<String> {
        let enough = max_chars.checked_mul(4)?; // normalize.py's `enough`
        let text: Cow<str> = if value.contains(['<', '&']) {
            match self.html_until_decided(value, max_chars, enough)? {
                Ok(kept) => return Some(kept),
                Err(text) => Cow::Owned(text),
            }
        } else {
            Cow::Borrowed(value)
        };
        let text = chars_prefix(&text, enough);
        if mojibake_hint(text) {
            return None; // ftfy.fix_encoding: Python's
        }
        Some(truncate(self.visible_folded(text, max_chars), max_chars))
    }

    /// normalize.py's `_html_until_decided` with the regex passes' reading (lib.rs): the
    /// text piece after piece, Ok(the kept text) as soon as the text read decides it; else
    /// Err(the text, exact for at least its first `enough` characters). The text of the
    /// pieces read is a prefix of the whole's, so its folding is a prefix of the folded
    /// whole: once longer than `max_chars` it decides, unless the mojibake repair could
    /// apply to the whole.
    fn html_until_decided(&self, value: &str, max_chars: usize, enough: usize)
                          -> Option<Result<String, String>> {
        let mut text = String::new();
        let (mut chars, mut start) = (0, 0);
        while start < value.len() {
            let end = piece_end(value, start, PIECE_CHARS);
            let Some(piece) = bulk_text_with(&value[start..end], true) else {
                return bounded(value, enough, true).map(Err); // the pieces lib.rs reads
            };
            chars += piece.chars().count();
            text.push_str(&piece);
            start = end;
            if chars >= enough || start == value.len() {
                break;
            }
            if chars > max_chars && !mojibake_possible(&text, &value[start..]) {
                let folded = self.visible_folded(&text, max_chars);
                if folded.chars().count() > max_chars {
                    return Some(Ok(truncate(folded, max_chars)));
                }
            }
        }
        Some(Err(text))
    }

    fn separates(&self, c: char) -> bool {
        let code = c as u32;
        if code < TABLED {
            return self.separates[(code / 64) as usize] & (1 << (code % 64)) != 0;
        }
        py_space(c) || self.invisible(c)
    }

    fn invisible(&self, c: char) -> bool {
        let code = c as u32;
        if code < 0x80 {
            return code < 0x20 || code == 0x7f;
        }
        let after = self.invisible.partition_point(|&(start, _)| start <= code);
        after > 0 && code <= self.invisible[after - 1].1
    }

    /// `_folded(_drop_invisible(text))`: invisible characters and whitespace runs as one
    /// space, none at the ends; or a prefix of it longer than `limit` characters, which
    /// `truncate` cuts to the same text (most of a long text is not folded).
    fn visible_folded(&self, text: &str, limit: usize) -> String {
        let mut out = String::with_capacity(text.len().min(limit * 4 + 8));
        let (b, mut chars, mut i, mut word_start) = (text.as_bytes(), 0, 0, 0);
        loop {
            // through a word's printable ASCII, the most of any text, in a tight loop
            while i < b.len() && b[i] > b' ' && b[i] < 0x7f {
                i += 1;
            }
            // the end of a word: a separator, or the end of the text
            let width = match b.get(i) {
                None => 0,
                Some(&byte) if byte < 0x80 => 1, // a space or a control
                Some(_) => {
                    let c = text[i..].chars().next().unwrap_or(' ');
                    if !self.separates(c) {
                        i += c.len_utf8();
                        continue;
                    }
                    c.len_utf8()
                }
            };
            if i > word_start {
                let word = &text[word_start..i];
                if !out.is_empty() {
                    out.push(' ');
                    chars += 1;
                }
                out.push_str(word);
                chars += if word.is_ascii() { word.len() } else { word.chars().count() };
                if chars > limit {
                    break;
                }
            }
            if width == 0 {
                break;
            }
            i += width;
            word_start = i;
        }
        out
    }
}

/// normalize.py's `_digest(*parts)` cut to `hex_chars`: the SHA-256 of the parts joined by
/// U+001F, in lower-case hexadecimal.
fn digest(parts: &[&str], hex_chars: usize) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\x1f");
        }
        hasher.update(part.as_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = hasher.finalize();
    let mut out = String::with_capacity(hex_chars);
    for byte in hash.iter().take(hex_chars / 2) {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out
}

/// `text[:count]` in characters.
fn chars_prefix(text: &str, count: usize) -> &str {
    char_offset(text, count).map_or(text, |end| &text[..end])
}

/// normalize.py's `_mojibake_possible`: whether the hint can match the whole text, knowing
/// `text`, the text of the HTML read, and `rest`, the HTML not read (cut before a "<"). In
/// the rest only a literal letter or an entity writes a first letter, and the character
/// after a literal one is the next literal one unless a tag or an entity follows.
fn mojibake_possible(text: &str, rest: &str) -> bool {
    if mojibake_hint(text) || text.ends_with(|c| matches!(c, '\u{c2}'..='\u{f4}')) {
        return true;
    }
    let b = rest.as_bytes();
    // _HINT_IN_HTML_UTF8: a first letter, then a second one, a "<" or a "&"
    let literal = memchr::memchr_iter(0xc3, b).any(|i| {
        matches!(b.get(i + 1), Some(0x82..=0xb4))
            && match b.get(i + 2..i + 4) {
                Some([0xc2, 0x80..=0xbf]) | Some([0xc5, 0x92..=0xb8]) => true,
                Some([0xe2, 0x80]) => matches!(b.get(i + 4), Some(0x93..=0xba)),
                _ => matches!(b.get(i + 2), Some(b'<' | b'&')),
            }
    });
    literal || memchr::memchr_iter(b'&', b).any(|i| writes_first_letter(&rest[i + 1..]))
}

/// `_HINT_FIRST_ENTITY` after its "&": a reference that may write a letter U+00C2-U+00F4
/// (a prefix is enough, as html.unescape reads names without ";").
fn writes_first_letter(after: &str) -> bool {
    let b = after.as_bytes();
    if b.first() == Some(&b'#') {
        let hex = matches!(b.get(1), Some(b'x' | b'X'));
        let digits = &after[if hex { 2 } else { 1 }..];
        let digits = digits.trim_start_matches('0').as_bytes();
        return if hex {
            // [cC][2-9a-fA-F] | [dDeE][0-9a-fA-F] | [fF][0-4]
            match (digits.first().map(u8::to_ascii_lowercase), digits.get(1)) {
                (Some(b'c'), Some(d)) => matches!(d, b'2'..=b'9' | b'a'..=b'f' | b'A'..=b'F'),
                (Some(b'd' | b'e'), Some(d)) => d.is_ascii_hexdigit(),
                (Some(b'f'), Some(d)) => matches!(d, b'0'..=b'4'),
                _ => false,
            }
        } else {
            // 19[4-9] | 2[0-3][0-9] | 24[0-4]
            matches!(digits, [b'1', b'9', b'4'..=b'9', ..] | [b'2', b'0'..=b'3', b'0'..=b'9', ..]
                             | [b'2', b'4', b'0'..=b'4', ..])
        };
    }
    first_letter_names().iter().any(|name| after.starts_with(name))
}

/// The entity names (without ";") whose text holds a letter U+00C2-U+00F4.
fn first_letter_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&str> = entities::HTML5
            .iter()
            .filter(|(_, text)| text.contains(|c| matches!(c, '\u{c2}'..='\u{f4}')))
            .map(|(name, _)| name.trim_end_matches(';'))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

/// normalize.py's `_MOJIBAKE_HINT`: a letter U+00C2-U+00F4 followed by one of
/// U+0080-U+00BF, U+0152-U+0178, U+2013-U+203A; in UTF-8, as `_MOJIBAKE_HINT_UTF8` reads it.
fn mojibake_hint(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr_iter(0xc3, b).any(|i| {
        matches!(b.get(i + 1), Some(0x82..=0xb4))
            && match b.get(i + 2..i + 4) {
                Some([0xc2, 0x80..=0xbf]) | Some([0xc5, 0x92..=0xb8]) => true,
                Some([0xe2, 0x80]) => matches!(b.get(i + 4), Some(0x93..=0xba)),
                _ => false,
            }
    })
}

/// normalize.py's `truncate` of a folded text (its only whitespace: single spaces).
fn truncate(text: String, max_chars: usize) -> String {
    let mut ends = text.char_indices().map(|(i, _)| i).skip(max_chars - 1);
    let Some(cut_end) = ends.next().filter(|_| ends.next().is_some()) else {
        return text; // at most max_chars characters
    };
    let mut cut = &text[..cut_end];
    if let Some(space) = cut.rfind(' ') {
        if cut[..space].chars().count() > max_chars / 2 {
            cut = &cut[..space];
        }
    }
    let mut out = String::with_capacity(cut.len() + 3);
    out.push_str(cut.trim_end_matches(py_space));
    out.push('…');
    out
}
