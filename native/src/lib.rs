//! html_text.py's `_bulk_html_text_bounded` and `_bulk_html_text` for plain fragments, compiled;
//! None when unsure (the caller then takes the Python readings).
//! plain_text.rs: normalize.py's `plain_text` (HTML to text, folded, cut), compiled (PlainText).
//! feed_dates.rs: feed_dates.py's reading of the two common date forms, compiled (DateReader).
//! feed_xml.rs: wellformed.py's reading of well-formed RSS and Atom, compiled (FeedReader).
use pyo3::prelude::*;
use pyo3::types::PyString;

mod entities;
mod feed_dates;
mod feed_xml;
mod plain_text;
mod xml_tree;

const BREAKS: [&str; 11] = ["br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"];

fn ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Python's str.isspace (the regex \s on str), for the characters it can meet here.
pub(crate) fn py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | ' ' | '\x1c'..='\x1f') || (!c.is_ascii() && c.is_whitespace())
}

enum Tag {
    /// a tag dropped: the text it adds (" ", "  " or nothing), where it ends
    Plain(&'static str, usize),
    /// a script or style start tag: skip to its end pattern
    RawText(&'static str, usize),
}

/// Characters of an unquoted attribute value read as html.parser reads it (URLs, words).
fn plain_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_.:/#?&=%+~@!,;()-".contains(&c)
}

/// The plain tag at `s[i] == '<'` as html_text.py's regexes read it; None when unsure.
/// `unquoted`: also a tag with unquoted attribute values, as html.parser reads it (the
/// whole readings' text, not the regex passes').
fn tag_at(s: &str, i: usize, unquoted: bool) -> Option<Tag> {
    let b = s.as_bytes();
    let mut j = i + 1;
    if s[j..].starts_with("!--") {
        // <!-- ... --\s*> : the first end; a "<" inside could interact with the other passes
        let mut k = j + 3;
        loop {
            let rel = s[k..].find("--")?;
            let body_end = k + rel;
            if s[j + 3..body_end].contains('<') {
                return None;
            }
            let rest = &s[body_end + 2..];
            let trimmed = rest.trim_start_matches(py_space);
            if trimmed.starts_with('>') {
                return Some(Tag::Plain("", s.len() - trimmed.len() + 1));
            }
            k = body_end + 1;
        }
    }
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    if !b.get(j)?.is_ascii_alphabetic() {
        return None;
    }
    let name_start = j;
    while j < b.len() && b[j].is_ascii_alphanumeric() {
        j += 1;
    }
    let name = &s[name_start..j];
    let lower = name.to_ascii_lowercase();
    let is_break = BREAKS.contains(&lower.as_str());
    for skipped in ["script", "style", "noscript", "template"] {
        if lower.starts_with(skipped) && !(closing || lower == "script" || lower == "style") {
            return None;
        }
    }
    if closing {
        while j < b.len() && ws(b[j]) {
            j += 1;
        }
        return if b.get(j) == Some(&b'>') {
            Some(Tag::Plain(if is_break { " " } else { "" }, j + 1))
        } else {
            None
        };
    }
    // attributes: ws+ name (ws* = ws* "..." | '...')?
    loop {
        let mut k = j;
        while k < b.len() && ws(b[k]) {
            k += 1;
        }
        if k == j {
            break;
        }
        let attr_start = k;
        for (off, c) in s[k..].char_indices() {
            if py_space(c) || matches!(c, '"' | '\'' | '<' | '>' | '/' | '=') {
                k = attr_start + off;
                break;
            }
            k = attr_start + off + c.len_utf8();
        }
        if k == attr_start {
            j = k; // the trailing whitespace
            break;
        }
        j = k;
        let mut m = k;
        while m < b.len() && ws(b[m]) {
            m += 1;
        }
        if b.get(m) == Some(&b'=') {
            m += 1;
            while m < b.len() && ws(b[m]) {
                m += 1;
            }
            let quote = *b.get(m)?;
            if quote != b'"' && quote != b'\'' {
                // an unquoted value: html.parser's bare value ([^>\s]*) when its characters
                // are plain ones and a space or ">" ends it; the regex passes do not read it
                let bare = b[m..].iter().take_while(|&&c| unquoted && plain_bare(c)).count();
                if bare == 0 || !matches!(b.get(m + bare), Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')) {
                    return None;
                }
                j = m + bare;
                continue;
            }
            let close = s[m + 1..].find(quote as char)? + m + 1;
            if s[m + 1..close].contains('<') {
                return None;
            }
            j = close + 1;
        }
    }
    let self_closing = s[j..].starts_with("/>");
    let end = if self_closing {
        j + 2
    } else if b.get(j) == Some(&b'>') {
        j + 1
    } else {
        return None;
    };
    if !self_closing && (lower == "script" || lower == "style") {
        return Some(Tag::RawText(if lower == "script" { "script" } else { "style" }, end));
    }
    let text = match (is_break, self_closing) {
        (true, true) => "  ",
        (true, false) => " ",
        _ => "",
    };
    Some(Tag::Plain(text, end))
}

/// The end of `</\s*name\s*>` (re.IGNORECASE) from `from`; the caller excludes the
/// non-ASCII characters IGNORECASE folds onto ASCII letters.
fn raw_text_end(s: &str, from: usize, name: &str) -> Option<usize> {
    let mut k = from;
    while let Some(rel) = s[k..].find("</") {
        let start = k + rel + 2;
        let rest = &s[start..];
        let after_ws = rest.trim_start_matches(py_space);
        if after_ws.len() >= name.len() && after_ws.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            let tail = after_ws[name.len()..].trim_start_matches(py_space);
            if tail.starts_with('>') {
                return Some(s.len() - tail.len() + 1);
            }
        }
        k = start;
    }
    None
}

fn lookup(name: &str) -> Option<&'static str> {
    entities::HTML5
        .binary_search_by(|(k, _)| k.cmp(&name))
        .ok()
        .map(|i| entities::HTML5[i].1)
}

/// html.unescape of one text run appended to `out`.
fn unescape_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let b = after.as_bytes();
        if b.first() == Some(&b'#') {
            let (hex, digits_start) = match b.get(1) {
                Some(b'x') | Some(b'X') => (true, 2),
                _ => (false, 1),
            };
            let mut k = digits_start;
            while k < b.len() && (if hex { b[k].is_ascii_hexdigit() } else { b[k].is_ascii_digit() }) {
                k += 1;
            }
            if k == digits_start {
                out.push('&');
                rest = after;
                continue;
            }
            let mut num: u64 = 0;
            for &d in &b[digits_start..k] {
                let v = (d as char).to_digit(16).unwrap() as u64;
                num = (num.saturating_mul(if hex { 16 } else { 10 })).saturating_add(v).min(1 << 40);
            }
            if b.get(k) == Some(&b';') {
                k += 1;
            }
            if let Some(&(_, r)) = entities::INVALID_CHARREFS.iter().find(|(n, _)| *n as u64 == num) {
                out.push_str(r);
            } else if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
                out.push('\u{FFFD}');
            } else if entities::INVALID_CODEPOINTS.binary_search(&(num as u32)).is_err() {
                out.push(char::from_u32(num as u32).unwrap());
            }
            rest = &after[k..];
            continue;
        }
        // [^\t\n\f <&#;]{1,32};?
        let mut end = 0;
        for (count, (off, c)) in after.char_indices().enumerate() {
            if count == 32 || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';') {
                end = off;
                break;
            }
            end = off + c.len_utf8();
        }
        if end == 0 {
            out.push('&');
            rest = after;
            continue;
        }
        let name_end = end;
        if after[end..].starts_with(';') {
            end += 1;
        }
        let s = &after[..end];
        rest = &after[end..];
        if let Some(v) = lookup(s) {
            out.push_str(v);
            continue;
        }
        // longest prefix of at least 2 characters (ASCII names: bytes are characters)
        let mut found = false;
        let prefix_max = if end > name_end { name_end } else { name_end.saturating_sub(1) };
        let mut x = prefix_max.min(s.len());
        while x >= 2 {
            if s.is_char_boundary(x) {
                if let Some(v) = lookup(&s[..x]) {
                    out.push_str(v);
                    out.push_str(&s[x..]);
                    found = true;
                    break;
                }
            }
            x -= 1;
        }
        if !found {
            out.push('&');
            out.push_str(s);
        }
    }
    out.push_str(rest);
}

/// `_bulk_html_text` of one piece; None when the regex passes would not read it (or when
/// this reading is not sure to give what they give).
pub(crate) fn bulk_text(piece: &str) -> Option<String> {
    bulk_text_with(piece, false)
}

/// `bulk_text`, or with `unquoted` the text html.parser reads also where a tag has unquoted
/// attribute values (the regex passes then give None; the Python readings' text is
/// html.parser's).
pub(crate) fn bulk_text_with(piece: &str, unquoted: bool) -> Option<String> {
    let has_ff = piece.contains('\x0c');
    let sep = if !has_ff {
        '\x0c'
    } else if !piece.contains('\t') {
        '\t'
    } else {
        return None;
    };
    let mut out = String::with_capacity(piece.len());
    let mut i = 0;
    let mut checked_fold = false;
    loop {
        let next = piece[i..].find('<').map(|r| i + r);
        let text = &piece[i..next.unwrap_or(piece.len())];
        if text.contains('&') {
            let before = out.len();
            unescape_into(text, &mut out);
            if out[before..].contains(sep) {
                return None; // the regex passes would drop it
            }
        } else {
            out.push_str(text);
        }
        let Some(lt) = next else { break };
        match tag_at(piece, lt, unquoted)? {
            Tag::Plain(t, end) => {
                out.push_str(t);
                i = end;
            }
            Tag::RawText(name, end) => {
                if !checked_fold {
                    // re.IGNORECASE folds these onto s, i, k
                    if piece.contains(['\u{17F}', '\u{130}', '\u{131}', '\u{212A}']) {
                        return None;
                    }
                    checked_fold = true;
                }
                i = raw_text_end(piece, end, name)?;
            }
        }
    }
    Some(out)
}

/// The byte offset of character `n` of `s`; None when `s` has at most `n` characters.
pub(crate) fn char_offset(s: &str, n: usize) -> Option<usize> {
    let b = s.as_bytes();
    let starts = |bytes: &[u8]| bytes.iter().filter(|&&x| (x as i8) >= -0x40).count();
    let (mut count, mut i) = (0, 0);
    while i + 64 <= b.len() {
        let here = starts(&b[i..i + 64]); // not continuation bytes: characters
        if count + here > n {
            break;
        }
        count += here;
        i += 64;
    }
    for (j, &x) in b[i..].iter().enumerate() {
        if (x as i8) >= -0x40 {
            if count == n {
                return Some(i + j);
            }
            count += 1;
        }
    }
    None
}

/// Where html_text.py's `bulk_text_pieces` ends the piece starting at `start`: just before
/// the last "<" within its first `piece_chars` characters, or the end of `value`.
pub(crate) fn piece_end(value: &str, start: usize, piece_chars: usize) -> usize {
    let rest = &value[start..];
    match char_offset(rest, piece_chars) {
        Some(hi) => {
            let lo = rest.chars().next().map_or(0, char::len_utf8);
            rest[lo..hi].rfind('<').map_or(value.len(), |r| start + lo + r)
        }
        None => value.len(),
    }
}

/// `_bulk_html_text_bounded(value, enough)` (`unquoted`: `bulk_text_with`'s): pieces of
/// `enough * 2` characters, each cut just before a "<", until the text is longer than
/// `enough`. Walks only what it reads.
pub(crate) fn bounded(value: &str, enough: usize, unquoted: bool) -> Option<String> {
    let mut parts = String::new();
    let mut chars = 0usize;
    let mut start = 0usize; // bytes
    while start < value.len() {
        let end = piece_end(value, start, enough * 2);
        let text = bulk_text_with(&value[start..end], unquoted)?;
        chars += text.chars().count();
        parts.push_str(&text);
        if chars > enough {
            break;
        }
        start = end;
    }
    Some(parts)
}

#[pyfunction]
fn html_to_text(value: &Bound<'_, PyString>, enough: usize) -> Option<String> {
    match value.to_str() {
        Ok(s) => bounded(s, enough, false),
        Err(_) => None, // lone surrogates: Python's reading
    }
}

/// `_bulk_html_text(piece)`: the regex passes' text of one piece, None when unsure.
#[pyfunction]
fn bulk_html_text(value: &Bound<'_, PyString>) -> Option<String> {
    value.to_str().ok().and_then(bulk_text)
}

#[pymodule]
fn monitor_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(html_to_text, m)?)?;
    m.add_function(wrap_pyfunction!(bulk_html_text, m)?)?;
    m.add_class::<feed_xml::FeedReader>()?;
    m.add_class::<plain_text::PlainText>()?;
    m.add_class::<feed_dates::DateReader>()?;
    Ok(())
}
