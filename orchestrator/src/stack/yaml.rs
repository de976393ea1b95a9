//! YAML text to a [`Node`] tree that remembers where every key and value came from.
//!
//! Why our own tree rather than a serde format crate: Compose needs things a plain
//! deserializer hides. Errors must name file:line:column long after files were merged;
//! `!reset` and `!override` tags must survive until the merge; `<<` merge keys and
//! anchors must be expanded with a budget (alias bombs are refused, not expanded);
//! duplicate keys are refused; and interpolation rewrites scalar text before typing.
//! The events come from `saphyr-parser`, a maintained, panic-free YAML 1.2 parser.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::de::{resolve_plain, Resolved};
use saphyr_parser::{Event, ScalarStyle, Span as RawSpan};

mod budget;

/// Refuse files larger than this before parsing (a stack file is a few KiB; 16 MiB
/// leaves room for generated stacks of many thousand services).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Nodes that alias expansion may add to one document. Legitimate files reuse small
/// anchors a few hundred times; "billion laughs" files need millions.
pub const MAX_ALIAS_NODES: usize = 1_000_000;
/// Nesting deeper than this is refused: no Compose file needs it, and every later pass
/// recurses over the tree.
pub const MAX_DEPTH: usize = 128;

/// One loaded file: its path and text, shared by every span that points into it.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// The text of a 1-based line, for showing the offending line under an error.
    pub fn line(&self, line: u32) -> Option<&str> {
        self.text.lines().nth((line as usize).checked_sub(1)?)
    }
}

/// Where a key or value starts: file, 1-based line and 1-based column (in characters).
#[derive(Clone)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    fn from_raw(file: &Arc<SourceFile>, raw: &RawSpan) -> Span {
        Span {
            file: Arc::clone(file),
            line: raw.start.line() as u32,
            col: raw.start.col() as u32 + 1,
        }
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.path.display(), self.line, self.col)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl PartialEq for Span {
    fn eq(&self, other: &Self) -> bool {
        self.line == other.line && self.col == other.col && self.file.path == other.file.path
    }
}

/// How a scalar was written. Only plain scalars are resolved to numbers, booleans or
/// null; a quoted or block scalar is always a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
}

/// The Compose merge tags; any other tag is kept by name and otherwise ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// `!reset`: drop the value inherited from an earlier file or `extends` base.
    Reset,
    /// `!override`: replace the inherited value whole instead of merging into it.
    Override,
    Other(String),
}

/// A mapping key: its text and where it was written. Hashes and compares by text only,
/// so maps can be looked up with a plain `&str`.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub span: Span,
    /// The key was a plain number, boolean or null (`123:`), which Compose refuses.
    pub non_string: bool,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Key {}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}
impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.name
    }
}

pub type Map = IndexMap<Key, Node>;

/// A function given each scalar's key path, text and style (to rewrite) and place.
pub type ScalarVisitor<'f, E> =
    dyn FnMut(&[String], &mut String, &mut Style, &Span) -> Result<(), E> + 'f;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Scalar(String, Style),
    Seq(Vec<Node>),
    Map(Map),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Option<Tag>,
}

/// Two nodes are equal when their values are; where they were written does not matter.
impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.tag == other.tag
    }
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node {
            value,
            span,
            tag: None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (plain or quoted); None for null, sequences and maps.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Looks up a key of a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    /// A word for the node's kind, for "expected a mapping, found a sequence".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar(..) => "a scalar",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Visits every scalar in the tree, mutably, with the key path that leads to it.
    pub fn walk_scalars_mut<E>(
        &mut self,
        path: &mut Vec<String>,
        f: &mut ScalarVisitor<'_, E>,
    ) -> Result<(), E> {
        match &mut self.value {
            Value::Scalar(s, style) => f(path, s, style, &self.span),
            Value::Null => Ok(()),
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(format!("[{i}]"));
                    let r = item.walk_scalars_mut(path, f);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            Value::Map(map) => {
                for (k, v) in map.iter_mut() {
                    path.push(k.name.clone());
                    let r = v.walk_scalars_mut(path, f);
                    path.pop();
                    r?;
                }
                Ok(())
            }
        }
    }
}

/// What went wrong while reading YAML, and where.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub span: Span,
    pub message: String,
}

/// Parses every document of a file. An empty file gives no documents.
pub fn parse(file: Arc<SourceFile>) -> Result<Vec<Node>, YamlError> {
    let at_start = Span {
        file: Arc::clone(&file),
        line: 1,
        col: 1,
    };
    if file.text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            span: at_start,
            message: format!(
                "file is {} bytes; stack files larger than {} bytes are refused",
                file.text.len(),
                MAX_FILE_BYTES
            ),
        });
    }
    let text = file.text.strip_prefix('\u{feff}').unwrap_or(&file.text);
    // Pass one: the alias budget, before any node is built.
    let recorded = budget::record(&file, text)?;
    let mut builder = Builder {
        file: Arc::clone(&file),
        anchors: HashMap::new(),
        events: recorded.events.into_iter(),
        tail: recorded.tail,
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = builder.next(&at_start)?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                builder.anchors.clear();
                let (first, first_span) = builder.next(&at_start)?;
                let node = builder.node(first, first_span, 0)?;
                docs.push(node);
            }
            other => {
                return Err(builder.error(&span, format!("unexpected YAML event {other:?}")));
            }
        }
    }
    Ok(docs)
}

/// The parser's error, at its place.
fn parser_error(file: &Arc<SourceFile>, e: &saphyr_parser::ScanError) -> YamlError {
    YamlError {
        span: Span {
            file: Arc::clone(file),
            line: e.marker().line() as u32,
            col: e.marker().col() as u32 + 1,
        },
        message: e.info().to_string(),
    }
}

/// Pass two: the tree, from the events pass one recorded (and found within budget).
struct Builder<'i> {
    file: Arc<SourceFile>,
    /// Finished anchored nodes. An anchor still being built is absent, so an alias to
    /// it (a self-reference) is refused.
    anchors: HashMap<usize, Node>,
    events: std::vec::IntoIter<(Event<'i>, RawSpan)>,
    /// Where pass one stopped (the parser's error), reported once the events before
    /// it are built.
    tail: Option<YamlError>,
}

fn tag_of(tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>) -> Option<Tag> {
    let tag = tag?;
    Some(match (tag.handle.as_str(), tag.suffix.as_str()) {
        ("!", "reset") => Tag::Reset,
        ("!", "override") => Tag::Override,
        _ => Tag::Other(tag.to_string()),
    })
}

/// Plain scalars that YAML 1.2's core schema reads as null.
pub fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

impl<'i> Builder<'i> {
    fn error(&self, span: &RawSpan, message: String) -> YamlError {
        YamlError {
            span: Span::from_raw(&self.file, span),
            message,
        }
    }

    fn next(&mut self, at_start: &Span) -> Result<(Event<'i>, RawSpan), YamlError> {
        match self.events.next() {
            Some(ev) => Ok(ev),
            None => Err(self.tail.take().unwrap_or_else(|| YamlError {
                span: at_start.clone(),
                message: "unexpected end of YAML stream".into(),
            })),
        }
    }

    fn node(&mut self, event: Event<'i>, raw: RawSpan, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.error(
                &raw,
                format!("nesting deeper than {MAX_DEPTH} levels is refused"),
            ));
        }
        let span = Span::from_raw(&self.file, &raw);
        let at_start = span.clone();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag_of(tag);
                let style = match (style, &tag) {
                    (_, Some(Tag::Other(t))) if t == "tag:yaml.org,2002:str" => Style::Quoted,
                    (ScalarStyle::Plain, _) => Style::Plain,
                    _ => Style::Quoted,
                };
                let value = if style == Style::Plain && is_null_text(&text) {
                    Value::Null
                } else {
                    Value::Scalar(text.into_owned(), style)
                };
                let node = Node { value, span, tag };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next(&at_start)?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp, depth + 1)?);
                }
                let node = Node {
                    value: Value::Seq(items),
                    span,
                    tag: tag_of(tag),
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                let tag = tag_of(tag);
                let node = self.mapping(span, tag, depth)?;
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                // Pass one charged the copy to the alias budget.
                let Some(target) = self.anchors.get(&id) else {
                    return Err(self.error(
                        &raw,
                        "alias refers to a node that contains it (a cycle) or to an unknown anchor"
                            .into(),
                    ));
                };
                let mut copy = target.clone();
                // Errors about an alias's value point at the alias, where the user looks.
                copy.span = span;
                Ok(copy)
            }
            other => Err(self.error(&raw, format!("unexpected YAML event {other:?}"))),
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn mapping(&mut self, span: Span, tag: Option<Tag>, depth: usize) -> Result<Node, YamlError> {
        let mut map = Map::new();
        // `<<` entries, applied after the explicit keys: explicit keys always win.
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let (ev, key_raw) = self.next(&span)?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let key_node = self.node(ev, key_raw, depth + 1)?;
            let (vev, vraw) = self.next(&span)?;
            let value = self.node(vev, vraw, depth + 1)?;
            let name = match &key_node.value {
                Value::Scalar(s, _) => s.clone(),
                Value::Null => String::new(),
                _ => {
                    return Err(YamlError {
                        message: format!(
                            "a mapping key must be a string, found {}",
                            key_node.kind()
                        ),
                        span: key_node.span,
                    })
                }
            };
            if name == "<<" && matches!(key_node.value, Value::Scalar(_, Style::Plain)) {
                merges.push(value);
                continue;
            }
            let non_string = match &key_node.value {
                Value::Scalar(s, Style::Plain) => !matches!(resolve_plain(s), Resolved::Str),
                Value::Null => true,
                _ => false,
            };
            let key = Key {
                name,
                span: key_node.span,
                non_string,
            };
            if let Some((prev, _)) = map.get_key_value(key.name.as_str()) {
                return Err(YamlError {
                    message: format!(
                        "mapping key {:?} already defined at line {}",
                        key.name, prev.span.line
                    ),
                    span: key.span,
                });
            }
            map.insert(key, value);
        }
        for merge in merges {
            let sources: Vec<Node> = match merge.value {
                Value::Map(_) => vec![merge],
                Value::Seq(items) => items,
                _ => {
                    return Err(YamlError {
                        message: format!(
                            "map merge requires map or sequence of maps as the value, found {}",
                            merge.kind()
                        ),
                        span: merge.span,
                    })
                }
            };
            for source in sources {
                let Value::Map(entries) = source.value else {
                    return Err(YamlError {
                        span: source.span,
                        message: "map merge requires map or sequence of maps as the value".into(),
                    });
                };
                for (k, v) in entries {
                    // Earlier sources and explicit keys take precedence (YAML merge key spec).
                    map.entry(k).or_insert(v);
                }
            }
        }
        Ok(Node {
            value: Value::Map(map),
            span,
            tag,
        })
    }
}

#[cfg(test)]
pub(crate) fn parse_str(text: &str) -> Result<Vec<Node>, YamlError> {
    parse(Arc::new(SourceFile {
        path: PathBuf::from("test.yaml"),
        text: text.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_str(text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    fn err(text: &str) -> YamlError {
        parse_str(text).unwrap_err()
    }

    #[test]
    fn keeps_line_and_column_of_keys_and_values() {
        let n = one("services:\n  web:\n    image: nginx\n");
        let web = n.get("services").unwrap().get("web").unwrap();
        let image = web.get("image").unwrap();
        assert_eq!((image.span.line, image.span.col), (3, 12));
        let (key, _) = web.as_map().unwrap().get_key_value("image").unwrap();
        assert_eq!((key.span.line, key.span.col), (3, 5));
    }

    #[test]
    fn plain_and_quoted_scalars_are_told_apart() {
        let n = one("a: 1\nb: '1'\nc: ~\nd: \"\"\ne: |\n  x\n");
        assert_eq!(
            n.get("a").unwrap().value,
            Value::Scalar("1".into(), Style::Plain)
        );
        assert_eq!(
            n.get("b").unwrap().value,
            Value::Scalar("1".into(), Style::Quoted)
        );
        assert!(n.get("c").unwrap().is_null());
        assert_eq!(
            n.get("d").unwrap().value,
            Value::Scalar("".into(), Style::Quoted)
        );
        assert_eq!(
            n.get("e").unwrap().value,
            Value::Scalar("x\n".into(), Style::Quoted)
        );
    }

    #[test]
    fn merge_keys_explicit_keys_win_and_earlier_sources_win() {
        let n = one("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 3\n");
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().as_str(), Some("3"));
        assert_eq!(c.get("y").unwrap().as_str(), Some("1"));
        assert_eq!(c.get("z").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn merge_key_to_a_scalar_is_refused() {
        let e = err("a: &a 1\nb:\n  <<: *a\n");
        assert!(
            e.message.contains("map merge requires map"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.message, "mapping key \"a\" already defined at line 1");
        assert_eq!((e.span.line, e.span.col), (3, 1));
    }

    #[test]
    fn tags_are_kept() {
        let n = one("a: !reset []\nb: !override {x: 1}\n");
        assert_eq!(n.get("a").unwrap().tag, Some(Tag::Reset));
        assert_eq!(n.get("b").unwrap().tag, Some(Tag::Override));
    }

    #[test]
    fn self_referencing_alias_is_refused() {
        let e = err("x: &h\n  y:\n    <<: *h\n");
        assert!(e.message.contains("cycle"), "{}", e.message);
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        let names: Vec<char> = ('a'..='j').collect();
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(", ");
            text.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
        }
        let started = std::time::Instant::now();
        let e = err(&text);
        assert!(e.message.contains("excessive aliasing"), "{}", e.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// The fuzzer's slow alias bombs (fuzz/regressions/stack_loader/alias-bomb-slow-*,
    /// 422 bytes each; seconds and hundreds of MB before the budget was charged up
    /// front): refused by pass one, so no node of them is ever built, at the alias that
    /// goes over the budget.
    #[test]
    fn fuzzed_alias_bombs_are_refused_before_any_node_is_built() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/stack_loader");
        for (name, at) in [
            ("alias-bomb-slow-1.yaml", (10, 10)),
            ("alias-bomb-slow-2.yaml", (9, 34)),
        ] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let file = Arc::new(SourceFile {
                path,
                text: text.clone(),
            });
            let Err(e) = budget::record(&file, &text) else {
                panic!("{name}: pass one let it through to the tree builder");
            };
            assert!(
                e.message.contains("excessive aliasing"),
                "{name}: {}",
                e.message
            );
            assert_eq!((e.span.line, e.span.col), at, "{name}");
            let started = std::time::Instant::now();
            let e = parse(file).unwrap_err();
            let took = started.elapsed();
            assert!(
                e.message.contains("excessive aliasing"),
                "{name}: {}",
                e.message
            );
            assert!(
                took < std::time::Duration::from_millis(200),
                "{name}: refused after {took:?}"
            );
        }
    }

    #[test]
    fn anchors_used_within_the_budget_still_expand() {
        // 9 * 9 * 9 aliases of a 2-node map: 1,458 nodes and then some, well within.
        let text = "a: &a {k: v}\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                    d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
        let n = one(text);
        let Value::Seq(d) = &n.get("d").unwrap().value else {
            panic!("d is a sequence")
        };
        assert_eq!(d.len(), 9);
        assert_eq!(
            d[8].as_seq().unwrap()[8].as_seq().unwrap()[8]
                .get("k")
                .unwrap()
                .as_str(),
            Some("v")
        );
    }

    #[test]
    fn a_syntax_error_after_a_semantic_one_does_not_hide_it() {
        // Pass one stops at the parser's error; pass two still reports the duplicate key
        // before it first, as the file reads.
        let e = err("a: 1\na: 2\nb: [\n");
        assert!(e.message.contains("already defined"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let e = err(&("[".repeat(200) + &"]".repeat(200)));
        assert!(e.message.contains("nesting deeper"), "{}", e.message);
        // Far deeper input is stopped by the parser's own limit, also without a crash.
        let e = err(&("[".repeat(100_000) + &"]".repeat(100_000)));
        assert!(e.message.contains("recursion limit"), "{}", e.message);
    }

    #[test]
    fn tab_indentation_is_refused() {
        let e = err("services:\n\tweb:\n\t\timage: x\n");
        assert!(e.message.to_lowercase().contains("tab"), "{}", e.message);
    }

    #[test]
    fn multiple_documents_and_empty_file() {
        assert_eq!(parse_str("a: 1\n---\nb: 2\n").unwrap().len(), 2);
        assert!(parse_str("").unwrap().is_empty());
    }

    #[test]
    fn non_scalar_keys_are_refused() {
        let e = err("? [a]\n: 1\n");
        assert!(e.message.contains("must be a string"), "{}", e.message);
    }
}
