//! wellformed.py's reading of a well-formed RSS 2.0, RSS 1.0 or Atom 1.0 document, compiled:
//! the same entries, or None when unsure (the caller then takes the lxml reading).
//!
//! xml_tree.rs reads the document strictly (refusing whatever libxml2 might read otherwise:
//! a DTD, non-ASCII names, deep nesting...) after the XML declaration is checked here; the walk
//! refuses a link or guid under an xml:base or base attribute (resolved against it in Python).
//! The element rules (names, actions) are wellformed.py's own tables, given at construction.
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use pyo3::prelude::*;

use crate::py_space;
use crate::xml_tree::{Node, Tree, XML};

// wellformed.py's action codes, in its order.
const TITLE: u8 = 0;
const MEDIA_TITLE: u8 = 1;
const SUMMARY: u8 = 2;
const CONTENT: u8 = 3;
const LINK: u8 = 4;
const GUID: u8 = 5;
const RESET: u8 = 6;
const REFUSE: u8 = 7;
const TIME: u8 = 8;

const ATOM: &str = "http://www.w3.org/2005/Atom";
const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const USERLAND: &str = "http://backend.userland.com/rss";
// libxml2 refuses longer texts (10 MB) without huge_tree
const MAX_BYTES: usize = 8_000_000;

type Refusable<T> = Option<T>; // None: refused

#[pyclass(frozen)]
pub struct FeedReader {
    prefixes: HashMap<String, String>,
    actions: HashMap<String, u8>,
    content_like: HashSet<String>,
    source_parts: HashSet<String>,
    text_types: HashSet<String>,
    html_types: HashSet<String>,
    cp1252: [Option<char>; 32],
}

/// One entry: link, guid, title, summary, and the last published/updated/created text.
type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    [Option<String>; 3],
);

#[pymethods]
impl FeedReader {
    #[new]
    fn new(
        prefixes: HashMap<String, String>,
        actions: HashMap<String, u8>,
        content_like: HashSet<String>,
        source_parts: HashSet<String>,
        text_types: HashSet<String>,
        html_types: HashSet<String>,
        cp1252: HashMap<u32, char>,
    ) -> Self {
        let mut table = [None; 32];
        for (code, c) in cp1252 {
            if (0x80..0xa0).contains(&code) {
                table[(code - 0x80) as usize] = Some(c);
            }
        }
        FeedReader {
            prefixes,
            actions,
            content_like,
            source_parts,
            text_types,
            html_types,
            cp1252: table,
        }
    }

    /// (entries as (link, guid, title, summary_html, (published, updated, created)), language)
    /// for UTF-8 `data`, or None when unsure.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        py: Python<'_>,
        data: &[u8],
    ) -> Option<(
        Vec<(
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            (Option<String>, Option<String>, Option<String>),
        )>,
        Option<String>,
    )> {
        let (entries, language) = py.detach(|| self.read_bytes(data))?;
        let entries = entries
            .into_iter()
            .map(|(link, guid, title, summary, [a, b, c])| (link, guid, title, summary, (a, b, c)))
            .collect();
        Some((entries, language))
    }
}

struct Entry<'a, 't> {
    link: Option<String>,
    guid: Option<String>,
    title: Option<String>,
    title_depth: i64,
    title_stored_at: Option<usize>,
    summary: Option<Node<'a, 't>>,
    summary_stored_at: Option<usize>,
    has_content: bool,
    contents: Vec<Node<'a, 't>>,
    times: [Option<String>; 3],
}

/// An xml:base or base attribute: wellformed.py's `_has_base`.
fn has_base(element: Node) -> bool {
    element
        .attributes()
        .any(|a| a.name() == "base" && a.namespace().is_none_or(|ns| ns == XML))
}

impl FeedReader {
    fn read_bytes(&self, data: &[u8]) -> Refusable<(Vec<Fields>, Option<String>)> {
        if data.len() > MAX_BYTES {
            return None;
        }
        let text = std::str::from_utf8(data).ok()?;
        if !plain_declaration(text) {
            return None;
        }
        let tree = Tree::parse(text)?;
        let root = tree.root_element();
        let (head, entries) = self.layout(root)?;
        let mut fields = Vec::with_capacity(entries.len());
        for element in entries {
            fields.push(self.entry(element)?);
        }
        Some((fields, self.language(root, head)?))
    }

    /// feedparser's name for an element (wellformed.py's `_name`); None for non-ASCII names.
    fn name(&self, node: Node) -> Refusable<String> {
        let local = node.local();
        let namespace = node.namespace().unwrap_or("");
        if !local.is_ascii() || !namespace.is_ascii() {
            return None;
        }
        let mut lowered = namespace.to_ascii_lowercase();
        if lowered.contains("backend.userland.com/rss") {
            lowered = USERLAND.to_string();
        }
        let prefix = match self.prefixes.get(&lowered) {
            Some(known) => Some(known.as_str()),
            None if namespace.is_empty() => None,
            None => node.prefix(),
        };
        Some(match prefix {
            Some(p) if !p.is_empty() => {
                let mut name = p.to_ascii_lowercase();
                name.push('_');
                name.push_str(&local.to_ascii_lowercase());
                name
            }
            _ => local.to_ascii_lowercase(),
        })
    }

    fn layout<'a, 't>(&self, root: Node<'a, 't>) -> Refusable<(Node<'a, 't>, Vec<Node<'a, 't>>)> {
        let (head, entries) = if root.namespace() == Some(ATOM) && root.local() == "feed" {
            let entries: Vec<Node> = root
                .children()
                .filter(|c| c.is_element() && c.namespace() == Some(ATOM) && c.local() == "entry")
                .collect();
            (root, entries)
        } else {
            let kind = self.name(root)?;
            if kind != "rss" && kind != "rdf_rdf" {
                return None;
            }
            let mut channels = Vec::new();
            for child in root.children().filter(Node::is_element) {
                if self.name(child)? == "channel" {
                    channels.push(child);
                }
            }
            if channels.len() != 1 {
                return None;
            }
            let head = channels[0];
            let holder = if kind == "rss" { head } else { root };
            let mut entries = Vec::new();
            for child in holder.children().filter(Node::is_element) {
                if self.name(child)? == "item" {
                    entries.push(child);
                }
            }
            (head, entries)
        };
        let ids: HashSet<u32> = entries.iter().map(Node::id).collect();
        self.check_outside(root, &ids)?;
        Some((head, entries))
    }

    /// Refused when feedparser would find an entry, or content, outside the entries.
    fn check_outside(&self, parent: Node, entries: &HashSet<u32>) -> Refusable<()> {
        for child in parent.children().filter(Node::is_element) {
            if entries.contains(&child.id()) {
                continue;
            }
            let name = self.name(child)?;
            if name == "item" || name == "entry" || self.actions.get(&name) == Some(&CONTENT) {
                return None;
            }
            self.check_outside(child, entries)?;
        }
        Some(())
    }

    fn entry(&self, element: Node) -> Refusable<Fields> {
        if element
            .attributes()
            .any(|a| a.namespace().is_none() && matches!(a.name(), "lastmod" | "href"))
        {
            return None; // CDF attributes feedparser reads as a date and a link
        }
        let mut entry = Entry {
            link: None,
            guid: element.attribute(Some(RDF), "about").map(Cow::into_owned),
            title: None,
            title_depth: -1,
            title_stored_at: None,
            summary: None,
            summary_stored_at: None,
            has_content: false,
            contents: Vec::new(),
            times: [None, None, None],
        };
        let based =
            std::iter::successors(element.parent_element(), Node::parent_element).any(has_base);
        self.walk(&mut entry, element, 1, based)?;
        let mut summary = String::new();
        if let Some(first) = entry.summary {
            for candidate in std::iter::once(first).chain(entry.contents.iter().copied()) {
                let value = self.text(candidate)?;
                if !value.trim_matches(py_space).is_empty() {
                    summary = value;
                    break;
                }
            }
        }
        Some((entry.link, entry.guid, entry.title, summary, entry.times))
    }

    fn walk<'a, 't>(
        &self,
        entry: &mut Entry<'a, 't>,
        parent: Node<'a, 't>,
        depth: usize,
        based: bool, // an ancestor (or the entry) gives a base URI
    ) -> Refusable<()> {
        for child in parent.children().filter(Node::is_element) {
            let name = self.name(child)?;
            let based = based || has_base(child);
            match self.actions.get(&name) {
                Some(&REFUSE) => return None,
                Some(&action) => {
                    if based && (action == LINK || action == GUID) {
                        return None; // resolved against the base in Python
                    }
                    self.read_field(entry, action, child, depth)?;
                }
                None if has_markup(child) => {
                    if self.content_like.contains(&name) {
                        return None;
                    }
                    self.walk(entry, child, depth + 1, based)?;
                }
                None => {}
            }
        }
        Some(())
    }

    fn read_field<'a, 't>(
        &self,
        entry: &mut Entry<'a, 't>,
        action: u8,
        element: Node<'a, 't>,
        depth: usize,
    ) -> Refusable<()> {
        if action <= MEDIA_TITLE {
            self.check_type(element)?;
            let value = self.text(element)?;
            let proper = action == TITLE;
            let stored_deeper = entry.title_stored_at.is_none_or(|at| depth <= at);
            if !(-1 < entry.title_depth && entry.title_depth <= depth as i64) && stored_deeper {
                entry.title_stored_at = Some(depth);
                entry.title = Some(value.clone());
            }
            if proper && !value.is_empty() {
                entry.title_depth = depth as i64;
            }
        } else if action == SUMMARY {
            self.plain_text_element(element)?;
            if entry.summary.is_some() && !entry.has_content {
                add_content(entry, element);
            } else if entry.summary_stored_at.is_none_or(|at| depth <= at) {
                entry.summary = Some(element);
                entry.summary_stored_at = Some(depth);
            }
        } else if depth > 1 {
            return None;
        } else if action >= TIME {
            entry.times[usize::from(action - TIME)] = Some(self.text(element)?);
        } else if action == CONTENT {
            self.plain_text_element(element)?;
            add_content(entry, element);
        } else if action == LINK {
            self.link(entry, element)?;
        } else if action == RESET {
            if has_markup(element) && !self.closing_source(element)? {
                return None;
            }
            entry.title_depth = -1;
        } else {
            // guid, id
            let permalink = attribute(element, "ispermalink").is_none_or(|v| v == "true");
            let value = self.text(element)?;
            if permalink {
                no_extra_slashes(&value)?;
                if entry.link.is_none() {
                    entry.link = Some(value.clone());
                }
            }
            entry.guid = Some(value);
        }
        Some(())
    }

    fn link(&self, entry: &mut Entry, element: Node) -> Refusable<()> {
        let href = attribute(element, "url")
            .or_else(|| attribute(element, "uri"))
            .or_else(|| attribute(element, "href"));
        let has_href = attribute(element, "href").is_some();
        if href.as_deref().is_none_or(str::is_empty) && !has_href {
            let value = self.text(element)?;
            no_extra_slashes(&value)?;
            entry.link = Some(if value.contains('&') {
                link_amps(&value)
            } else {
                value
            });
            return Some(());
        }
        let href = match href {
            Some(h) if !h.is_empty() => h,
            _ => attribute(element, "href")?,
        };
        let rel = attribute(element, "rel").unwrap_or(Cow::Borrowed("alternate"));
        if !rel.is_ascii() {
            return None; // str.lower beyond ASCII
        }
        let rel = rel.to_ascii_lowercase();
        let default = if rel == "self" {
            "application/atom+xml"
        } else {
            "text/html"
        };
        let kind = attribute(element, "type").unwrap_or(Cow::Borrowed(default));
        if !kind.is_ascii() {
            return None;
        }
        if rel == "alternate" && self.html_types.contains(&kind.to_ascii_lowercase()) {
            no_extra_slashes(&href)?;
            entry.link = Some(href.into_owned());
        }
        Some(())
    }

    /// `_closing_source`: a source ending its entry, holding only a feed's parts.
    fn closing_source(&self, element: Node) -> Refusable<bool> {
        if self.name(element)? != "source" || element.next_sibling_element().is_some() {
            return Some(false);
        }
        for inner in element.descendant_elements() {
            if !self.source_parts.contains(&self.name(inner)?) {
                return Some(false);
            }
        }
        Some(true)
    }

    /// `_check_type`: refused for a type feedparser reads otherwise, base64 or out-of-line.
    fn check_type(&self, element: Node) -> Refusable<()> {
        if attribute(element, "mode").is_some() || attribute(element, "src").is_some() {
            return None;
        }
        match attribute(element, "type") {
            Some(kind)
                if !kind.is_ascii() || !self.text_types.contains(&kind.to_ascii_lowercase()) =>
            {
                None
            }
            _ => Some(()),
        }
    }

    fn plain_text_element(&self, element: Node) -> Refusable<()> {
        if has_markup(element) {
            return None;
        }
        self.check_type(element)
    }

    /// `_text`: the element's text stripped, repaired and cp1252-mapped as feedparser leaves
    /// it; refused if it holds markup.
    fn text(&self, element: Node) -> Refusable<String> {
        let mut joined = String::new();
        for child in element.children() {
            if !child.is_text() {
                return None;
            }
            child.text(&mut joined);
        }
        let stripped = joined.trim_matches(py_space);
        if stripped.is_ascii() {
            return Some(stripped.to_string());
        }
        // feedparser's repair of UTF-8 that someone read as Latin-1 and encoded again
        let value = latin1_utf8(stripped).unwrap_or_else(|| stripped.to_string());
        // U+0080-U+009F are C2 80-C2 9F in UTF-8
        let b = value.as_bytes();
        if !memchr::memchr_iter(0xc2, b).any(|i| matches!(b.get(i + 1), Some(0x80..=0x9f))) {
            return Some(value);
        }
        Some(
            value
                .chars()
                .map(|c| match c {
                    '\u{80}'..='\u{9f}' => self.cp1252[c as usize - 0x80].unwrap_or(c),
                    _ => c,
                })
                .collect(),
        )
    }

    /// `_language`: the channel's last language element, else the root's xml:lang.
    fn language(&self, root: Node, head: Node) -> Refusable<Option<String>> {
        let mut language = None;
        for child in head.children().filter(Node::is_element) {
            let name = self.name(child)?;
            if name == "language" || name == "dc_language" {
                language = Some(self.text(child)?);
            }
        }
        if language.is_some() {
            return Some(language);
        }
        let lang = root
            .attribute(Some(XML), "lang")
            .filter(|v| !v.is_empty())
            .or_else(|| root.attribute(None, "lang"));
        Some(lang.filter(|v| !v.is_empty()).map(|v| v.replace('_', "-")))
    }
}

fn add_content<'a, 't>(entry: &mut Entry<'a, 't>, element: Node<'a, 't>) {
    entry.has_content = true;
    entry.contents.push(element);
    if entry.summary.is_none() {
        entry.summary = Some(element);
    }
}

/// lxml's `len(element)`: child elements, comments or PIs.
fn has_markup(element: Node) -> bool {
    element.children().any(|c| !c.is_text())
}

/// The value of the last attribute without namespace named `key` in any case: wellformed.py's
/// `_attributes(element).get(key)` (names are ASCII: xml_tree.rs).
fn attribute<'a>(element: Node<'a, '_>, key: &str) -> Option<Cow<'a, str>> {
    element
        .attributes()
        .rev()
        .find(|a| a.namespace().is_none() && a.name().eq_ignore_ascii_case(key))
        .map(|a| a.value())
}

/// `urljoin("", uri)` changes a URI with slashes after "scheme://"; Python does that.
fn no_extra_slashes(uri: &str) -> Refusable<()> {
    if uri.contains(":///") {
        None
    } else {
        Some(())
    }
}

/// wellformed.py's link text: "&amp;" read as "&", then "&name;" as "&name".
fn link_amps(value: &str) -> String {
    let value = value.replace("&amp;", "&");
    let b = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'&' {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > i + 1 && b.get(j) == Some(&b';') {
                out.push_str(&value[copied..j]);
                copied = j + 1;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&value[copied..]);
    out
}

/// `text.encode("iso-8859-1").decode("utf-8")`, or None when either step fails.
fn latin1_utf8(text: &str) -> Option<String> {
    if text.bytes().any(|b| b >= 0xc4) {
        return None; // a character past U+00FF (UTF-8 lead bytes of U+0080-U+00FF: C2, C3)
    }
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        bytes.push(u8::try_from(u32::from(c)).ok()?);
    }
    String::from_utf8(bytes).ok()
}

/// Whether the document starts with no XML declaration or a plain one: version 1.0, an
/// encoding name, standalone yes or no (what libxml2 does with the rest is not copied).
fn plain_declaration(text: &str) -> bool {
    let b = text.as_bytes();
    if !b.starts_with(b"<?xml") {
        return true;
    }
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = 5;
    let mut seen = 0; // version, encoding, standalone in order
    loop {
        let before = i;
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        if b[i..].starts_with(b"?>") {
            return seen >= 1;
        }
        if i == before {
            return false;
        }
        let name_end = i + b[i..].iter().take_while(|c| c.is_ascii_lowercase()).count();
        let name = &b[i..name_end];
        let order = match name {
            b"version" => 1,
            b"encoding" => 2,
            b"standalone" => 3,
            _ => return false,
        };
        if order <= seen || (seen == 0 && order != 1) {
            return false;
        }
        seen = order;
        i = name_end;
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => q,
            _ => return false,
        };
        let Some(len) = b[i + 1..].iter().position(|&c| c == quote) else {
            return false;
        };
        let value = &b[i + 1..i + 1 + len];
        let ok = match order {
            1 => value == b"1.0",
            2 => {
                value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
            }
            _ => value == b"yes" || value == b"no",
        };
        if !ok {
            return false;
        }
        i += len + 2;
    }
}
