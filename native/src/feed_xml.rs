//! wellformed.py's reading of a well-formed RSS 2.0, RSS 1.0 or Atom 1.0 document, compiled:
//! the same entries, or None when unsure (the caller then takes the lxml reading).
//!
//! roxmltree checks well-formedness (tag matching, names, characters, `]]>`, comments, duplicate
//! attributes, namespace prefixes, unknown entities); on top of it this refuses what libxml2 might
//! read otherwise: a DTD, an XML declaration other than a plain one, a PI named like `xml`,
//! non-ASCII names, deep nesting, a link or guid under an xml:base or base attribute (URIs are
//! resolved against a base in Python).
//! The element rules (names, actions) are wellformed.py's own tables, given at construction.
use std::collections::{HashMap, HashSet};

use memchr::memmem;
use pyo3::prelude::*;
use roxmltree::{Document, Node, NodeId};

use crate::py_space;

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
const XML: &str = "http://www.w3.org/XML/1998/namespace";
const USERLAND: &str = "http://backend.userland.com/rss";
// libxml2 refuses deeper documents (256 without huge_tree) and longer texts (10 MB)
const MAX_DEPTH: usize = 128;
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

struct Entry<'a, 'input> {
    link: Option<String>,
    guid: Option<String>,
    title: Option<String>,
    title_depth: i64,
    title_stored_at: Option<usize>,
    summary: Option<Node<'a, 'input>>,
    summary_stored_at: Option<usize>,
    has_content: bool,
    contents: Vec<Node<'a, 'input>>,
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
        if text.starts_with('\u{FEFF}')
            || !plain_declaration(text)
            || !plain_references(data)
            || memmem::find(data, b"</:").is_some()
            || memmem::find(data, b"\r&").is_some()
        {
            // "</:x>" closes "<x>" to roxmltree; it keeps a "\r" before a reference
            return None;
        }
        let doc = Document::parse(text).ok()?; // no DTD allowed
        for node in doc.root().children() {
            if node.is_pi() {
                check_pi(node)?;
            }
        }
        let root = doc.root_element();
        check_tree(root, 0, text)?;
        let (head, entries) = self.layout(root, text)?;
        let mut fields = Vec::with_capacity(entries.len());
        for element in entries {
            fields.push(self.entry(element, text)?);
        }
        Some((fields, self.language(root, head, text)?))
    }

    /// feedparser's name for an element (wellformed.py's `_name`); None for non-ASCII names.
    fn name(&self, node: Node, text: &str) -> Refusable<String> {
        let tag = node.tag_name();
        let local = tag.name();
        let namespace = tag.namespace().unwrap_or("");
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
            None => document_prefix(node, text),
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

    fn layout<'a, 'input>(
        &self,
        root: Node<'a, 'input>,
        text: &str,
    ) -> Refusable<(Node<'a, 'input>, Vec<Node<'a, 'input>>)> {
        let tag = root.tag_name();
        let (head, entries) = if tag.namespace() == Some(ATOM) && tag.name() == "feed" {
            let entries: Vec<Node> = root
                .children()
                .filter(|c| {
                    c.is_element()
                        && c.tag_name().namespace() == Some(ATOM)
                        && c.tag_name().name() == "entry"
                })
                .collect();
            (root, entries)
        } else {
            let kind = self.name(root, text)?;
            if kind != "rss" && kind != "rdf_rdf" {
                return None;
            }
            let mut channels = Vec::new();
            for child in root.children().filter(Node::is_element) {
                if self.name(child, text)? == "channel" {
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
                if self.name(child, text)? == "item" {
                    entries.push(child);
                }
            }
            (head, entries)
        };
        let ids: HashSet<NodeId> = entries.iter().map(Node::id).collect();
        self.check_outside(root, &ids, text)?;
        Some((head, entries))
    }

    /// Refused when feedparser would find an entry, or content, outside the entries.
    fn check_outside(&self, parent: Node, entries: &HashSet<NodeId>, text: &str) -> Refusable<()> {
        for child in parent.children().filter(Node::is_element) {
            if entries.contains(&child.id()) {
                continue;
            }
            let name = self.name(child, text)?;
            if name == "item" || name == "entry" || self.actions.get(&name) == Some(&CONTENT) {
                return None;
            }
            self.check_outside(child, entries, text)?;
        }
        Some(())
    }

    fn entry(&self, element: Node, text: &str) -> Refusable<Fields> {
        if element
            .attributes()
            .any(|a| a.namespace().is_none() && matches!(a.name(), "lastmod" | "href"))
        {
            return None; // CDF attributes feedparser reads as a date and a link
        }
        let mut entry = Entry {
            link: None,
            guid: element.attribute((RDF, "about")).map(str::to_string),
            title: None,
            title_depth: -1,
            title_stored_at: None,
            summary: None,
            summary_stored_at: None,
            has_content: false,
            contents: Vec::new(),
            times: [None, None, None],
        };
        let based = element.ancestors().any(|a| a.is_element() && has_base(a));
        self.walk(&mut entry, element, 1, based, text)?;
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

    fn walk<'a, 'input>(
        &self,
        entry: &mut Entry<'a, 'input>,
        parent: Node<'a, 'input>,
        depth: usize,
        based: bool, // an ancestor (or the entry) gives a base URI
        text: &str,
    ) -> Refusable<()> {
        for child in parent.children().filter(Node::is_element) {
            let name = self.name(child, text)?;
            let based = based || has_base(child);
            match self.actions.get(&name) {
                Some(&REFUSE) => return None,
                Some(&action) => {
                    if based && (action == LINK || action == GUID) {
                        return None; // resolved against the base in Python
                    }
                    self.read_field(entry, action, child, depth, text)?;
                }
                None if has_markup(child) => {
                    if self.content_like.contains(&name) {
                        return None;
                    }
                    self.walk(entry, child, depth + 1, based, text)?;
                }
                None => {}
            }
        }
        Some(())
    }

    fn read_field<'a, 'input>(
        &self,
        entry: &mut Entry<'a, 'input>,
        action: u8,
        element: Node<'a, 'input>,
        depth: usize,
        text: &str,
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
            if has_markup(element) && !self.closing_source(element, text)? {
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
        if href.is_none_or(str::is_empty) && !has_href {
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
        let rel = attribute(element, "rel").unwrap_or("alternate");
        if !rel.is_ascii() {
            return None; // str.lower beyond ASCII
        }
        let rel = rel.to_ascii_lowercase();
        let default = if rel == "self" {
            "application/atom+xml"
        } else {
            "text/html"
        };
        let kind = attribute(element, "type").unwrap_or(default);
        if !kind.is_ascii() {
            return None;
        }
        if rel == "alternate" && self.html_types.contains(&kind.to_ascii_lowercase()) {
            no_extra_slashes(href)?;
            entry.link = Some(href.to_string());
        }
        Some(())
    }

    /// `_closing_source`: a source ending its entry, holding only a feed's parts.
    fn closing_source(&self, element: Node, text: &str) -> Refusable<bool> {
        if self.name(element, text)? != "source" || element.next_sibling_element().is_some() {
            return Some(false);
        }
        for inner in element.descendants().skip(1).filter(Node::is_element) {
            if !self.source_parts.contains(&self.name(inner, text)?) {
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
            joined.push_str(if child.is_text() {
                child.text()?
            } else {
                return None;
            });
        }
        let stripped = joined.trim_matches(py_space);
        if stripped.is_ascii() {
            return Some(stripped.to_string());
        }
        // feedparser's repair of UTF-8 that someone read as Latin-1 and encoded again
        let value = latin1_utf8(stripped).unwrap_or_else(|| stripped.to_string());
        if !value.chars().any(|c| ('\u{80}'..'\u{a0}').contains(&c)) {
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
    fn language(&self, root: Node, head: Node, text: &str) -> Refusable<Option<String>> {
        let mut language = None;
        for child in head.children().filter(Node::is_element) {
            let name = self.name(child, text)?;
            if name == "language" || name == "dc_language" {
                language = Some(self.text(child)?);
            }
        }
        if language.is_some() {
            return Some(language);
        }
        let lang = root
            .attribute((XML, "lang"))
            .filter(|v| !v.is_empty())
            .or_else(|| root.attribute("lang"));
        Some(lang.filter(|v| !v.is_empty()).map(|v| v.replace('_', "-")))
    }
}

fn add_content<'a, 'input>(entry: &mut Entry<'a, 'input>, element: Node<'a, 'input>) {
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
/// `_attributes(element).get(key)` (names are ASCII: `check_tree`).
fn attribute<'a>(element: Node<'a, '_>, key: &str) -> Option<&'a str> {
    element
        .attributes()
        .rev()
        .find(|a| a.namespace().is_none() && a.name().eq_ignore_ascii_case(key))
        .map(|a| a.value())
}

/// The prefix written in the element's start tag (lxml's `element.prefix`).
fn document_prefix<'input>(node: Node<'_, 'input>, text: &'input str) -> Option<&'input str> {
    let start = node.range().start + 1;
    let rest = &text[start..];
    let end = rest
        .find([' ', '\t', '\r', '\n', '/', '>'])
        .unwrap_or(rest.len());
    rest[..end].split_once(':').map(|(prefix, _)| prefix)
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
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        bytes.push(u8::try_from(u32::from(c)).ok()?);
    }
    String::from_utf8(bytes).ok()
}

/// Names ASCII, short and QNames to libxml2 too, namespace URIs it parses, depth bounded, no PI
/// named like xml.
fn check_tree(element: Node, depth: usize, text: &str) -> Refusable<()> {
    if depth > MAX_DEPTH
        || !element.tag_name().name().is_ascii()
        || element.tag_name().name().len() > 200
    {
        return None;
    }
    if element.range().start + 1 >= text.len() || text.as_bytes()[element.range().start + 1] == b':'
    {
        return None; // ":name": libxml2's QName error, a plain name to roxmltree
    }
    for a in element.attributes() {
        if !a.name().is_ascii()
            || a.name().len() > 200
            || text.as_bytes().get(a.range_qname().start) == Some(&b':')
        {
            return None;
        }
    }
    if new_namespaces(element) {
        for ns in element.namespaces() {
            // xmlns:p="" and URIs libxml2 does not parse are namespace errors to it
            if ns
                .name()
                .is_some_and(|p| !p.is_ascii() || ns.uri().is_empty())
                || !plain_uri(ns.uri())
            {
                return None;
            }
        }
    }
    for child in element.children() {
        if child.is_element() {
            check_tree(child, depth + 1, text)?;
        } else if child.is_pi() {
            check_pi(child)?;
        }
    }
    Some(())
}

fn check_pi(node: Node) -> Refusable<()> {
    let target = node.pi()?.target;
    let reserved = target.len() >= 3 && target[..3].eq_ignore_ascii_case("xml");
    if !target.is_ascii() || target.contains(':') || (reserved && target != "xml-stylesheet") {
        return None;
    }
    Some(())
}

/// Whether the document starts with no XML declaration or a plain one: version 1.0, an
/// encoding name, standalone yes or no (libxml2 and roxmltree differ on the rest).
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

/// Whether the element declares namespaces (its in-scope list is not its parent's).
fn new_namespaces(element: Node) -> bool {
    let Some(parent) = element.parent_element() else {
        return true;
    };
    let (mine, theirs) = (element.namespaces(), parent.namespaces());
    mine.len() != theirs.len()
        || match (mine.clone().next(), theirs.clone().next()) {
            (Some(a), Some(b)) => !std::ptr::eq(a, b),
            _ => false,
        }
}

/// A namespace URI that libxml2's RFC 3986 parser surely accepts: ASCII URI characters,
/// valid %-escapes, one "#" at most, a scheme of letters, an authority host[:digits].
fn plain_uri(uri: &str) -> bool {
    let b = uri.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let ok = c.is_ascii_alphanumeric()
            || b"-._~:/?#@!$&'()*+,;=".contains(&c)
            || (c == b'%'
                && b.len() > i + 2
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit());
        if !ok {
            return false;
        }
    }
    if b.iter().filter(|&&c| c == b'#').count() > 1 {
        return false;
    }
    let head_end = b.iter().position(|c| b"/?#".contains(c)).unwrap_or(b.len());
    let Some(colon) = b[..head_end].iter().position(|&c| c == b':') else {
        return true; // a relative reference without ":" in its first segment
    };
    let scheme = &b[..colon];
    if !scheme.first().is_some_and(u8::is_ascii_alphabetic)
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(c))
    {
        return false;
    }
    let Some(rest) = uri[colon + 1..].strip_prefix("//") else {
        return true;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    !host.is_empty() && !authority.contains('@') && port.bytes().all(|c| c.is_ascii_digit())
}

/// Whether every character reference names a character XML allows (roxmltree reads the others
/// as U+FFFD; libxml2 refuses them). Looks at the raw text: one in a CDATA section refuses too.
fn plain_references(data: &[u8]) -> bool {
    for at in memmem::find_iter(data, b"&#") {
        let rest = &data[at + 2..];
        let (digits, radix) = match rest.first() {
            Some(b'x') => (&rest[1..], 16),
            _ => (rest, 10),
        };
        let len = digits.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if len == 0 || len > 8 || digits.get(len) != Some(&b';') {
            return false;
        }
        let Ok(n) = u32::from_str_radix(std::str::from_utf8(&digits[..len]).unwrap_or(""), radix)
        else {
            return false;
        };
        if !matches!(n, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF) {
            return false;
        }
    }
    true
}
