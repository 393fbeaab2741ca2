//! YAML as `kiln pin` and `kiln check` read it: the events of a real YAML 1.2 parser ([`saphyr_parser`]) turned
//! into a small tree whose scalars know the exact bytes of their text in the source.
//!
//! The parser's marks count characters and a scalar's span may start at its properties (`&anchor`, `!tag`) or run
//! past it (into a trailing comment), so each scalar's text is located again in the source from the span's start:
//! properties and comments skipped, then the text must be there byte for byte (inside the quotes when quoted). A
//! scalar whose source text is not its value (escapes, `''`, a line break folded into a space, block scalars) has no
//! `raw` range: it is read, never rewritten.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

pub(crate) type NodeId = usize;

#[derive(Debug)]
pub(crate) struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// Byte range of the value's text in the source (inside the quotes), when it is exactly the value on one line.
    pub raw: Option<(usize, usize)>,
    /// An empty plain value (`key:` with nothing after it): the byte just after the colon, where a value goes.
    pub empty_at: Option<usize>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<NodeId>),
    /// `(key, value)` pairs in order.
    Map(Vec<(NodeId, NodeId)>),
    /// An alias: the anchored node it names (`None`: an anchor the parser did not know).
    Alias(Option<NodeId>),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// The parser's anchor id, 0 without an anchor.
    pub anchor: usize,
    /// Byte where the node's own text starts (after its properties for a scalar).
    pub start: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// A flow collection (`{…}` / `[…]`); for a flow mapping, `end` is the byte of its `}`.
    pub flow: bool,
    pub end: usize,
}

/// A parsed stream: every node of every document, the documents' roots, and where each alias is.
#[derive(Debug)]
pub(crate) struct Yaml<'a> {
    pub src: &'a str,
    pub nodes: Vec<Node>,
    pub docs: Vec<NodeId>,
    /// For each anchored node, the alias nodes naming it, in order.
    pub aliases: HashMap<NodeId, Vec<NodeId>>,
    line_starts: Vec<usize>,
}

/// A stream that does not parse: 1-based line and column, and the parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "is not valid YAML: line {} column {}: {}",
            self.line, self.col, self.message
        )
    }
}

enum Open {
    Seq(NodeId),
    Map(NodeId, Option<NodeId>),
}

impl<'a> Yaml<'a> {
    pub fn parse(src: &'a str) -> Result<Yaml<'a>, YamlError> {
        // Marks count characters: byte offset of each character (and of the end).
        let mut bytes_at: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        bytes_at.push(src.len());
        let byte = |ch: usize| bytes_at.get(ch).copied().unwrap_or(src.len());
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let mut y = Yaml {
            src,
            nodes: Vec::new(),
            docs: Vec::new(),
            aliases: HashMap::new(),
            line_starts,
        };
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        let mut stack: Vec<Open> = Vec::new();
        for ev in Parser::new_from_str(src) {
            let (ev, span) = ev.map_err(|e| YamlError {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: e.info().to_string(),
            })?;
            let at = byte(span.start.index());
            let new = match ev {
                Event::Scalar(value, style, anchor, _tag) => {
                    let (start, raw, empty_at) = locate(src, at, &value, style);
                    Some(y.push(
                        Kind::Scalar(Scalar {
                            value: value.into_owned(),
                            style,
                            raw,
                            empty_at,
                        }),
                        anchor,
                        start,
                        false,
                    ))
                }
                Event::Alias(anchor) => {
                    let target = anchors.get(&anchor).copied();
                    let id = y.push(Kind::Alias(target), 0, at, false);
                    if let Some(t) = target {
                        y.aliases.entry(t).or_default().push(id);
                    }
                    Some(id)
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    let is_map = matches!(ev, Event::MappingStart(..));
                    let start = skip_properties(src, at);
                    let flow = src[start..].starts_with(if is_map { '{' } else { '[' });
                    let kind = if is_map {
                        Kind::Map(Vec::new())
                    } else {
                        Kind::Seq(Vec::new())
                    };
                    let id = y.push(kind, anchor, start, flow);
                    if anchor != 0 {
                        anchors.insert(anchor, id);
                    }
                    y.attach(&mut stack, id);
                    stack.push(if is_map {
                        Open::Map(id, None)
                    } else {
                        Open::Seq(id)
                    });
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some(Open::Seq(id) | Open::Map(id, _)) = stack.pop() {
                        y.nodes[id].end = at;
                    }
                    None
                }
                Event::DocumentStart(_) | Event::DocumentEnd => {
                    stack.clear();
                    None
                }
                _ => None,
            };
            if let Some(id) = new {
                if y.nodes[id].anchor != 0 {
                    anchors.insert(y.nodes[id].anchor, id);
                }
                y.attach(&mut stack, id);
            }
        }
        Ok(y)
    }

    fn push(&mut self, kind: Kind, anchor: usize, start: usize, flow: bool) -> NodeId {
        let line = self.line_of(start);
        self.nodes.push(Node {
            kind,
            anchor,
            start,
            line,
            flow,
            end: start,
        });
        self.nodes.len() - 1
    }

    /// Put a finished node into the open collection, or make it a document's root.
    fn attach(&mut self, stack: &mut [Open], id: NodeId) {
        match stack.last_mut() {
            None => self.docs.push(id),
            Some(Open::Seq(s)) => {
                if let Kind::Seq(items) = &mut self.nodes[*s].kind {
                    items.push(id);
                }
            }
            Some(Open::Map(m, key)) => match key.take() {
                None => *key = Some(id),
                Some(k) => {
                    if let Kind::Map(entries) = &mut self.nodes[*m].kind {
                        entries.push((k, id));
                    }
                }
            },
        }
    }

    /// 1-based line of byte `at`.
    pub fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= at)
    }

    /// The node an alias names (any other node is itself).
    pub fn resolve(&self, id: NodeId) -> NodeId {
        match self.nodes[id].kind {
            Kind::Alias(Some(t)) => t,
            _ => id,
        }
    }

    pub fn scalar(&self, id: NodeId) -> Option<&Scalar> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in mapping `map` (scalar keys; aliases resolved for the key only).
    pub fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        match &self.nodes[self.resolve(map)].kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| self.scalar(*k).is_some_and(|s| s.value == key))
                .map(|&(_, v)| v),
            _ => None,
        }
    }

    /// The line break the file uses (`\r\n` when its first line ends so).
    pub fn eol(&self) -> &'static str {
        match self.src.find('\n') {
            Some(i) if i > 0 && self.src.as_bytes()[i - 1] == b'\r' => "\r\n",
            _ => "\n",
        }
    }
}

/// Skip a node's properties (`&anchor`, `!tag`) and the blanks and comments after them.
fn skip_properties(src: &str, mut at: usize) -> usize {
    let b = src.as_bytes();
    while matches!(b.get(at), Some(b'&' | b'!')) {
        while at < b.len() && !matches!(b[at], b' ' | b'\t' | b'\r' | b'\n') {
            at += 1;
        }
        loop {
            match b.get(at) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => at += 1,
                Some(b'#') => {
                    while at < b.len() && b[at] != b'\n' {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
    }
    at
}

/// A scalar's start (after properties), its raw value range, and where an empty value would go.
fn locate(
    src: &str,
    at: usize,
    value: &str,
    style: ScalarStyle,
) -> (usize, Option<(usize, usize)>, Option<usize>) {
    if style == ScalarStyle::Plain && value.is_empty() {
        // An empty value's span is its key's colon.
        let empty = src[at..].starts_with(':').then_some(at + 1);
        return (at, None, empty);
    }
    let start = skip_properties(src, at);
    let rest = &src[start..];
    let raw = match style {
        ScalarStyle::Plain => rest
            .starts_with(value)
            .then_some((start, start + value.len())),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            let q = if style == ScalarStyle::SingleQuoted {
                '\''
            } else {
                '"'
            };
            let inner = rest.strip_prefix(q).unwrap_or("\u{0}");
            (!value.contains(['\'', '"', '\\'])
                && inner.starts_with(value)
                && inner[value.len()..].starts_with(q))
            .then_some((start + 1, start + 1 + value.len()))
        }
        _ => None,
    };
    // The text is the value only on one line (a multi-line scalar's value has its line breaks folded).
    let raw = raw.filter(|&(a, b)| !src[a..b].contains(['\n', '\r']));
    (start, raw, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_of(y: &Yaml, v: &str) -> Option<String> {
        y.nodes.iter().find_map(|n| match &n.kind {
            Kind::Scalar(s) if s.value == v => s.raw.map(|(a, b)| y.src[a..b].to_string()),
            _ => None,
        })
    }

    #[test]
    fn scalars_know_their_bytes() {
        let src = "\u{feff}image: \"a:b\"  # c\nx: &anc plain value\ny: *anc\nz: !!str |\n  image: q\n\
                   w: [{image: r/t/web:v1}, b]\nm: \"multi\n  line\"\nk: 'it''s'\nn: !!str &t 'q'\ne:\n";
        let y = Yaml::parse(src).unwrap();
        assert_eq!(raw_of(&y, "a:b").as_deref(), Some("a:b"));
        assert_eq!(raw_of(&y, "plain value").as_deref(), Some("plain value"));
        assert_eq!(raw_of(&y, "r/t/web:v1").as_deref(), Some("r/t/web:v1"));
        assert_eq!(raw_of(&y, "q").as_deref(), Some("q"));
        assert_eq!(raw_of(&y, "image: q\n"), None, "block scalar");
        assert_eq!(raw_of(&y, "multi line"), None, "multi-line");
        assert_eq!(raw_of(&y, "it's"), None, "escaped");
        let image = y
            .nodes
            .iter()
            .position(|n| matches!(&n.kind, Kind::Scalar(s) if s.value == "image"))
            .unwrap();
        assert_eq!(y.nodes[image].line, 1);
        assert_eq!(y.nodes[image].start, 3, "after the BOM");
        let root = y.docs[0];
        let alias = y.get(root, "y").unwrap();
        assert_eq!(y.scalar(alias).unwrap().value, "plain value");
        assert_eq!(y.aliases.values().next().unwrap(), &vec![alias]);
        let e = y.scalar(y.get(root, "e").unwrap()).unwrap();
        assert_eq!(e.empty_at, Some(src.len() - 1));
        assert!(Yaml::parse("a: [b\n").is_err());
    }
}
