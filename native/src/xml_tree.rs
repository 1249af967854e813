//! A strict XML reader for feed_xml.rs: a tree of elements, texts and the rest, or None for
//! anything it is not sure libxml2 reads the same way (libxml2 is wellformed.py's parser).
//!
//! It accepts a subset of XML 1.0 with namespaces: ASCII names, the five predefined entities and
//! character references to XML characters, comments, PIs, CDATA, an XML declaration already
//! checked by the caller; no DOCTYPE. Every well-formedness rule is checked (characters, names,
//! tag matching, attribute syntax, duplicates, quotes, `<` in values, `]]>` in text, `--` in
//! comments, prefixes bound, namespace URIs libxml2 parses). Texts and attribute values are
//! decoded only when read (line ends and attribute whitespace normalized as XML says).
use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};

pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS: &str = "http://www.w3.org/2000/xmlns/";
const MAX_DEPTH: usize = 128; // libxml2 refuses deeper than 256 without huge_tree
const MAX_NAME: usize = 200;
const MAX_ATTRIBUTES: usize = 100; // on one element, namespace declarations included
const MAX_BINDINGS: usize = 200; // namespace declarations in scope
const NONE: u32 = u32::MAX;

type Span = (u32, u32);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Element,
    Text,
    Other, // a comment or a PI
}

struct NodeData {
    kind: Kind,
    parent: u32,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    prefix: Span, // elements: their prefix (empty: none) and local name
    local: Span,
    namespace: u32,    // index into uris, NONE: no namespace
    items: (u32, u32), // elements: their attributes; texts: their segments
}

struct Attr {
    local: Span,
    namespace: u32,
    value: Span, // raw, between the quotes
}

struct Segment {
    span: Span,
    cdata: bool,
}

pub struct Tree<'t> {
    text: &'t str,
    nodes: Vec<NodeData>,
    attrs: Vec<Attr>,
    segments: Vec<Segment>,
    uris: Vec<Cow<'t, str>>,
    root: u32,
}

fn space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// Whether every byte is an XML character's: no C0 control but tab, LF and CR, and no
/// U+FFFE or U+FFFF (UTF-8 has no surrogates).
fn plain_characters(b: &[u8]) -> bool {
    let controls = b.iter().fold(false, |acc, &c| {
        acc | ((c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r'))
    });
    !controls
        && memmem::find_iter(b, b"\xef\xbf").all(|at| !matches!(b.get(at + 2), Some(0xbe | 0xbf)))
}

/// The character a reference at `b[0] == b'&'` stands for, and its length; None unless it is
/// one of the five predefined entities or a character reference to an XML character.
fn reference(b: &[u8]) -> Option<(char, usize)> {
    let end = memchr(b';', &b[..b.len().min(12)])?;
    let name = &b[1..end];
    let c = match name {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"apos" => '\'',
        b"quot" => '"',
        _ => {
            let (digits, radix) = match name {
                [b'#', b'x', rest @ ..] => (rest, 16),
                [b'#', rest @ ..] => (rest, 10),
                _ => return None,
            };
            let valid = |c: &u8| {
                if radix == 16 {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            };
            if digits.is_empty() || !digits.iter().all(valid) {
                return None;
            }
            let n = u32::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()?;
            if !matches!(n, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
            {
                return None;
            }
            char::from_u32(n)?
        }
    };
    Some((c, end + 1))
}

fn plain_references(b: &[u8]) -> bool {
    let mut at = 0;
    while let Some(i) = memchr(b'&', &b[at..]) {
        match reference(&b[at + i..]) {
            Some((_, len)) => at += i + len,
            None => return false,
        }
    }
    true
}

/// Text as XML reads it: references replaced (unless CDATA), CR LF and lone CR read as LF.
fn decode_into(out: &mut String, raw: &str, cdata: bool) {
    let b = raw.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    loop {
        let found = if cdata {
            memchr(b'\r', &b[at..])
        } else {
            memchr2(b'\r', b'&', &b[at..])
        };
        let Some(i) = found else { break };
        let i = at + i;
        out.push_str(&raw[copied..i]);
        if b[i] == b'\r' {
            out.push('\n');
            at = if b.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            };
        } else {
            let (c, len) = reference(&b[i..]).unwrap_or(('\u{FFFD}', 1)); // checked at parse
            out.push(c);
            at = i + len;
        }
        copied = at;
    }
    out.push_str(&raw[copied..]);
}

/// An attribute value as XML reads it: references replaced, each tab, LF, CR or CR LF a space.
fn attribute_value(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    if !b.iter().any(|&c| matches!(c, b'&' | b'\t' | b'\n' | b'\r')) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'\t' | b'\n' | b'\r' => {
                out.push_str(&raw[copied..i]);
                out.push(' ');
                i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                copied = i;
            }
            b'&' => {
                out.push_str(&raw[copied..i]);
                let (c, len) = reference(&b[i..]).unwrap_or(('\u{FFFD}', 1));
                out.push(c);
                i += len;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[copied..]);
    Cow::Owned(out)
}

/// A namespace URI that libxml2's RFC 3986 parser surely accepts: ASCII URI characters,
/// valid %-escapes, one "#" at most, a scheme of letters, an authority host[:digits].
pub fn plain_uri(uri: &str) -> bool {
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
    !host.is_empty()
        && !authority.contains('@')
        && port.is_empty() != authority.contains(':') // "host:" is not a URI to libxml2
        && port.bytes().all(|c| c.is_ascii_digit())
}

struct Parser<'t> {
    text: &'t str,
    b: &'t [u8],
    pos: usize,
    tree: Tree<'t>,
    bindings: Vec<(Span, u32)>, // prefix (empty: the default namespace), uri index
}

struct Open {
    node: u32,
    qname: Span,
    bindings: usize,
}

impl<'t> Parser<'t> {
    fn span(&self, s: Span) -> &'t str {
        &self.text[s.0 as usize..s.1 as usize]
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.b.len() && space(self.b[self.pos]) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// NCName (":" NCName)?: (prefix, local), prefix empty when absent.
    fn qname(&mut self) -> Option<(Span, Span)> {
        let start = self.pos;
        let first = self.ncname()?;
        if self.b.get(self.pos) == Some(&b':') {
            self.pos += 1;
            let local = self.ncname()?;
            return Some((first, local));
        }
        Some(((start as u32, start as u32), first))
    }

    fn ncname(&mut self) -> Option<Span> {
        let start = self.pos;
        if !name_start(*self.b.get(self.pos)?) {
            return None;
        }
        self.pos += 1;
        while self.pos < self.b.len() && name_char(self.b[self.pos]) {
            self.pos += 1;
        }
        (self.pos - start <= MAX_NAME).then_some((start as u32, self.pos as u32))
    }

    fn add(&mut self, parent: u32, kind: Kind) -> u32 {
        let id = self.tree.nodes.len() as u32;
        self.tree.nodes.push(NodeData {
            kind,
            parent,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            prefix: (0, 0),
            local: (0, 0),
            namespace: NONE,
            items: (0, 0),
        });
        if parent != NONE {
            let last = self.tree.nodes[parent as usize].last_child;
            if last == NONE {
                self.tree.nodes[parent as usize].first_child = id;
            } else {
                self.tree.nodes[last as usize].next_sibling = id;
            }
            self.tree.nodes[parent as usize].last_child = id;
        }
        id
    }

    /// A text or CDATA segment, appended to the parent's last child when that is a text.
    fn add_segment(&mut self, parent: u32, span: Span, cdata: bool) {
        let last = self.tree.nodes[parent as usize].last_child;
        let index = self.tree.segments.len() as u32;
        self.tree.segments.push(Segment { span, cdata });
        if last != NONE && self.tree.nodes[last as usize].kind == Kind::Text {
            self.tree.nodes[last as usize].items.1 = index + 1;
        } else {
            let id = self.add(parent, Kind::Text);
            self.tree.nodes[id as usize].items = (index, index + 1);
        }
    }

    /// A comment, PI (or, outside the root, whitespace) at `pos`; false when none is.
    fn misc(&mut self, parent: u32) -> Option<bool> {
        let rest = &self.b[self.pos..];
        if rest.starts_with(b"<!--") {
            // the first "--" must end it: "-->"
            let end = self.pos + 4 + memmem::find(&rest[4..], b"--")?;
            if self.b.get(end + 2) != Some(&b'>') {
                return None;
            }
            self.pos = end + 3;
        } else if rest.starts_with(b"<?") {
            self.pos += 2;
            let target = self.ncname()?;
            let name = self.span(target);
            let reserved = name.len() >= 3 && name[..3].eq_ignore_ascii_case("xml");
            if reserved && name != "xml-stylesheet" {
                return None;
            }
            if !self.b[self.pos..].starts_with(b"?>") && !self.skip_spaces() {
                return None;
            }
            self.pos += memmem::find(&self.b[self.pos..], b"?>")? + 2;
        } else {
            return Some(false);
        }
        if parent != NONE {
            self.add(parent, Kind::Other);
        }
        Some(true)
    }

    fn namespace_of(&self, prefix: Span) -> Option<u32> {
        let name = self.span(prefix);
        if name == "xml" {
            return Some(0);
        }
        for &(bound, uri) in self.bindings.iter().rev() {
            if self.span(bound) == name {
                return Some(if self.tree.uris[uri as usize].is_empty() {
                    NONE
                } else {
                    uri
                });
            }
        }
        name.is_empty().then_some(NONE) // an unbound prefix is an error
    }

    /// A start tag at `pos` ("<" seen); the element's id and whether it is empty.
    fn start_tag(&mut self, parent: u32) -> Option<(u32, Span, bool)> {
        self.pos += 1;
        let start = self.pos as u32;
        let (prefix, local) = self.qname()?;
        let qname = (start, self.pos as u32);
        let first_attr = self.tree.attrs.len();
        let mut prefixes: Vec<Span> = Vec::new(); // attribute prefixes, resolved below
        let empty = loop {
            let spaced = self.skip_spaces();
            match self.b.get(self.pos)? {
                b'>' => {
                    self.pos += 1;
                    break false;
                }
                b'/' if self.b.get(self.pos + 1) == Some(&b'>') => {
                    self.pos += 2;
                    break true;
                }
                _ if !spaced => return None,
                _ => {}
            }
            if prefixes.len() >= MAX_ATTRIBUTES || self.bindings.len() >= MAX_BINDINGS {
                return None; // bounds the quadratic checks below and the prefix look-ups
            }
            let (attr_prefix, attr_local) = self.qname()?;
            self.skip_spaces();
            if self.b.get(self.pos) != Some(&b'=') {
                return None;
            }
            self.pos += 1;
            self.skip_spaces();
            let quote = *self.b.get(self.pos)?;
            if quote != b'"' && quote != b'\'' {
                return None;
            }
            let open = self.pos + 1;
            let close = open + memchr(quote, &self.b[open..])?;
            let raw = &self.b[open..close];
            if memchr(b'<', raw).is_some() || !plain_references(raw) {
                return None;
            }
            self.pos = close + 1;
            let value = (open as u32, close as u32);
            let (p, l) = (self.span(attr_prefix), self.span(attr_local));
            if p == "xmlns" || (p.is_empty() && l == "xmlns") {
                let uri = attribute_value(self.span(value));
                let declared = if p.is_empty() {
                    (attr_prefix.0, attr_prefix.0)
                } else {
                    attr_local
                };
                let bound = &self.text[declared.0 as usize..declared.1 as usize];
                if (!p.is_empty() && (uri.is_empty() || bound == "xml" || bound == "xmlns"))
                    || uri == XML
                    || uri == XMLNS
                    || !plain_uri(&uri)
                    || self.bindings[self.bindings.len() - prefixes_declared(&prefixes)..]
                        .iter()
                        .any(|&(s, _)| self.span(s) == bound)
                {
                    return None;
                }
                self.tree.uris.push(uri);
                self.bindings
                    .push((declared, self.tree.uris.len() as u32 - 1));
                prefixes.push((NONE, 0)); // marks one declaration of this tag
                continue;
            }
            prefixes.push(attr_prefix);
            self.tree.attrs.push(Attr {
                local: attr_local,
                namespace: NONE,
                value,
            });
        };
        let element = self.add(parent, Kind::Element);
        if self.span(prefix) == "xmlns" {
            return None;
        }
        let namespace = self.namespace_of(prefix)?;
        for (index, &p) in (first_attr..).zip(prefixes.iter().filter(|p| p.0 != NONE)) {
            let namespace = if p.0 == p.1 {
                NONE
            } else {
                self.namespace_of(p)?
            };
            self.tree.attrs[index].namespace = namespace;
        }
        // duplicates: by expanded name (the same name twice is one of them; two prefixes
        // bound to one URI another)
        let attrs = &self.tree.attrs[first_attr..];
        let uri = |n: u32| (n != NONE).then(|| &*self.tree.uris[n as usize]);
        for (i, a) in attrs.iter().enumerate() {
            for other in &attrs[..i] {
                if self.span(other.local) == self.span(a.local)
                    && uri(other.namespace) == uri(a.namespace)
                {
                    return None;
                }
            }
        }
        let data = &mut self.tree.nodes[element as usize];
        data.prefix = prefix;
        data.local = local;
        data.namespace = namespace;
        data.items = (first_attr as u32, self.tree.attrs.len() as u32);
        Some((element, qname, empty))
    }

    fn parse(mut self) -> Option<Tree<'t>> {
        // the XML declaration (checked by the caller), then comments, PIs and spaces
        if self.b.starts_with(b"<?xml") && self.b.get(5).is_some_and(|&c| space(c) || c == b'?') {
            self.pos = memmem::find(self.b, b"?>")? + 2;
        }
        while self.skip_spaces() || self.misc(NONE)? {}
        if self.b.get(self.pos) != Some(&b'<') {
            return None;
        }
        let mut stack: Vec<Open> = Vec::new();
        let (root, qname, empty) = self.start_tag(NONE)?;
        self.tree.root = root;
        if !empty {
            stack.push(Open {
                node: root,
                qname,
                bindings: 0,
            });
        }
        while let Some(open) = stack.last() {
            let parent = open.node;
            let lt = self.pos + memchr(b'<', &self.b[self.pos..])?;
            if lt > self.pos {
                let raw = &self.b[self.pos..lt];
                if !plain_references(raw) || memmem::find(raw, b"]]>").is_some() {
                    return None;
                }
                self.add_segment(parent, (self.pos as u32, lt as u32), false);
                self.pos = lt;
            }
            let rest = &self.b[lt..];
            if rest.starts_with(b"</") {
                self.pos += 2;
                let start = self.pos;
                self.qname()?;
                let name = &self.b[start..self.pos];
                let open = stack.pop()?;
                if name != &self.b[open.qname.0 as usize..open.qname.1 as usize] {
                    return None;
                }
                self.skip_spaces();
                if self.b.get(self.pos) != Some(&b'>') {
                    return None;
                }
                self.pos += 1;
                self.bindings.truncate(open.bindings);
            } else if rest.starts_with(b"<![CDATA[") {
                let start = lt + 9;
                let end = start + memmem::find(&self.b[start..], b"]]>")?;
                self.add_segment(parent, (start as u32, end as u32), true);
                self.pos = end + 3;
            } else if self.misc(parent)? {
            } else if rest.starts_with(b"<!") {
                return None;
            } else {
                let bindings = self.bindings.len();
                let (element, qname, empty) = self.start_tag(parent)?;
                if empty {
                    self.bindings.truncate(bindings);
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    stack.push(Open {
                        node: element,
                        qname,
                        bindings,
                    });
                }
            }
        }
        while self.skip_spaces() || self.misc(NONE)? {}
        (self.pos == self.b.len()).then_some(self.tree)
    }
}

/// How many namespace declarations the markers in `prefixes` count.
fn prefixes_declared(prefixes: &[Span]) -> usize {
    prefixes.iter().filter(|p| p.0 == NONE).count()
}

impl<'t> Tree<'t> {
    /// The tree of `text` (the XML declaration already checked), or None.
    pub fn parse(text: &'t str) -> Option<Tree<'t>> {
        if !plain_characters(text.as_bytes()) {
            return None;
        }
        let tree = Tree {
            text,
            nodes: Vec::with_capacity(text.len() / 64),
            attrs: Vec::new(),
            segments: Vec::new(),
            uris: vec![Cow::Borrowed(XML)],
            root: NONE,
        };
        Parser {
            text,
            b: text.as_bytes(),
            pos: 0,
            tree,
            bindings: Vec::new(),
        }
        .parse()
    }

    pub fn root_element(&self) -> Node<'_, 't> {
        Node {
            tree: self,
            id: self.root,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Node<'a, 't> {
    tree: &'a Tree<'t>,
    id: u32,
}

pub struct Attribute<'a, 't> {
    tree: &'a Tree<'t>,
    attr: &'a Attr,
}

impl<'a, 't> Attribute<'a, 't> {
    pub fn name(&self) -> &'a str {
        &self.tree.text[self.attr.local.0 as usize..self.attr.local.1 as usize]
    }

    pub fn namespace(&self) -> Option<&'a str> {
        (self.attr.namespace != NONE).then(|| &*self.tree.uris[self.attr.namespace as usize])
    }

    pub fn value(&self) -> Cow<'a, str> {
        attribute_value(&self.tree.text[self.attr.value.0 as usize..self.attr.value.1 as usize])
    }
}

impl<'a, 't> Node<'a, 't> {
    fn data(&self) -> &'a NodeData {
        &self.tree.nodes[self.id as usize]
    }

    fn at(&self, id: u32) -> Option<Node<'a, 't>> {
        (id != NONE).then_some(Node {
            tree: self.tree,
            id,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn is_element(&self) -> bool {
        self.data().kind == Kind::Element
    }

    pub fn is_text(&self) -> bool {
        self.data().kind == Kind::Text
    }

    pub fn local(&self) -> &'a str {
        let s = self.data().local;
        &self.tree.text[s.0 as usize..s.1 as usize]
    }

    /// The prefix written in the start tag (lxml's `element.prefix`).
    pub fn prefix(&self) -> Option<&'a str> {
        let s = self.data().prefix;
        (s.0 != s.1).then(|| &self.tree.text[s.0 as usize..s.1 as usize])
    }

    pub fn namespace(&self) -> Option<&'a str> {
        let n = self.data().namespace;
        (n != NONE).then(|| &*self.tree.uris[n as usize])
    }

    pub fn attributes(&self) -> impl DoubleEndedIterator<Item = Attribute<'a, 't>> + 'a {
        let tree = self.tree;
        let (start, end) = if self.is_element() {
            self.data().items
        } else {
            (0, 0)
        };
        tree.attrs[start as usize..end as usize]
            .iter()
            .map(move |attr| Attribute { tree, attr })
    }

    /// The value of the attribute with this namespace and local name.
    pub fn attribute(&self, namespace: Option<&str>, local: &str) -> Option<Cow<'a, str>> {
        self.attributes()
            .find(|a| a.namespace() == namespace && a.name() == local)
            .map(|a| a.value())
    }

    /// A text node's text, decoded.
    pub fn text(&self, out: &mut String) {
        let (start, end) = self.data().items;
        for segment in &self.tree.segments[start as usize..end as usize] {
            let raw = &self.tree.text[segment.span.0 as usize..segment.span.1 as usize];
            decode_into(out, raw, segment.cdata);
        }
    }

    pub fn parent_element(&self) -> Option<Node<'a, 't>> {
        self.at(self.data().parent)
    }

    pub fn children(&self) -> impl Iterator<Item = Node<'a, 't>> + 'a {
        let mut next = self.at(self.data().first_child);
        std::iter::from_fn(move || {
            let node = next?;
            next = node.at(node.data().next_sibling);
            Some(node)
        })
    }

    pub fn next_sibling_element(&self) -> Option<Node<'a, 't>> {
        let mut next = self.at(self.data().next_sibling);
        while let Some(node) = next {
            if node.is_element() {
                return Some(node);
            }
            next = node.at(node.data().next_sibling);
        }
        None
    }

    /// The elements inside this one, in document order.
    pub fn descendant_elements(&self) -> Vec<Node<'a, 't>> {
        let mut found = Vec::new();
        let mut pending: Vec<Node<'a, 't>> = self.children().collect();
        pending.reverse();
        while let Some(node) = pending.pop() {
            if node.is_element() {
                found.push(node);
                let mut children: Vec<Node<'a, 't>> = node.children().collect();
                children.reverse();
                pending.extend(children);
            }
        }
        found
    }
}
