//! A serde `Deserializer` over [`Node`]: turns the merged tree into the typed model while
//! keeping, for any error, the file:line:column and key path of the value at fault.
//!
//! Typing follows what Compose users write rather than strict YAML: a number or boolean
//! may come from any scalar (interpolation produces text, `"8080"` is a port), booleans
//! accept YAML 1.1 spellings (`yes`, `on`), strings take the scalar text as written (so
//! `image: 1.0` stays `1.0`). `x-` extension keys of a struct are gathered under one
//! synthetic key, [`EXTENSIONS_KEY`], which model structs map to an `extensions` field.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::yaml::{Map, Node, Span, Style, Value};

/// The synthetic key under which a struct receives its `x-` extension keys.
pub const EXTENSIONS_KEY: &str = "__x";

/// A deserialization error with where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub span: Option<Span>,
    pub path: Option<String>,
    /// For an unknown key: the nearest known key, offered as "did you mean".
    pub suggestion: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            // serde's words for YAML's null read oddly to a Compose user.
            message: msg.to_string().replace("unit value", "null"),
            span: None,
            path: None,
            suggestion: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let known: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|k| !k.starts_with("__"))
            .collect();
        let suggestion = nearest(field, &known).map(str::to_string);
        let mut e = Self::custom(format!("unknown key `{field}`"));
        e.suggestion = suggestion;
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format!(
            "unknown value `{variant}`, expected one of: {}",
            expected.join(", ")
        ));
        e.suggestion = nearest(variant, expected).map(str::to_string);
        e
    }
}

/// The known word closest to a misspelt one, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The key path from the root to a node, printed as Compose does: `services.web.ports[1]`.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                if matches!(parent, Path::Root) {
                    write!(f, "{key}")
                } else {
                    write!(f, "{parent}.{key}")
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Deserializes a typed value from a node found at `path`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node, path: Path<'_>) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, path })
}

pub struct NodeDe<'a> {
    node: &'a Node,
    path: Path<'a>,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node, path: Path<'a>) -> Self {
        NodeDe { node, path }
    }

    /// Gives an error that has no place yet this node's place: the innermost node that
    /// failed is the one the user must fix.
    fn locate(&self, mut e: DeError) -> DeError {
        if e.span.is_none() {
            e.span = Some(self.node.span.clone());
            e.path = Some(self.path.to_string());
        }
        e
    }

    fn scalar(&self) -> Option<&'a str> {
        match &self.node.value {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    fn invalid_type(&self, expected: &str) -> DeError {
        let found = match &self.node.value {
            Value::Null => "null".to_string(),
            Value::Scalar(s, _) => format!("{s:?}"),
            Value::Seq(_) => "a sequence".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        };
        self.locate(de::Error::custom(format!(
            "expected {expected}, found {found}"
        )))
    }
}

/// YAML 1.1 and 1.2 spellings of booleans, as Compose accepts them.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// A plain scalar's type under YAML 1.2's core schema.
pub(crate) enum Resolved {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str,
}

pub(crate) fn resolve_plain(s: &str) -> Resolved {
    match s {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(v) = u64::from_str_radix(hex, 16) {
            return Resolved::Uint(v);
        }
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if let Ok(v) = u64::from_str_radix(oct, 8) {
            return Resolved::Uint(v);
        }
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = s.parse::<i64>() {
            return Resolved::Int(v);
        }
        if let Ok(v) = s.parse::<u64>() {
            return Resolved::Uint(v);
        }
    }
    let looks_float = !digits.is_empty()
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float {
        if let Ok(v) = s.parse::<f64>() {
            return Resolved::Float(v);
        }
    }
    Resolved::Str
}

macro_rules! deserialize_number {
    ($method:ident, $visit:ident, $ty:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let Some(s) = self.scalar() else {
                return Err(self.invalid_type($what));
            };
            let t = s.trim();
            let parsed = t
                .parse::<$ty>()
                .ok()
                .or_else(|| t.strip_prefix('+').and_then(|u| u.parse::<$ty>().ok()));
            match parsed {
                Some(v) => visitor.$visit(v).map_err(|e| self.locate(e)),
                None => Err(self.locate(de::Error::custom(format!(
                    "expected {}, found {:?}",
                    $what, s
                )))),
            }
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar(s, Style::Quoted) => visitor.visit_str(s),
            Value::Scalar(s, Style::Plain) => match resolve_plain(s) {
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::Uint(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_str(s),
            },
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: self.path,
            }),
            Value::Map(map) => visitor.visit_map(MapDe::new(map, self.path, false)),
        };
        r.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar().and_then(parse_bool) {
            Some(b) => visitor.visit_bool(b).map_err(|e| self.locate(e)),
            None => Err(self.invalid_type("a boolean (true or false)")),
        }
    }

    deserialize_number!(deserialize_i8, visit_i8, i8, "an integer");
    deserialize_number!(deserialize_i16, visit_i16, i16, "an integer");
    deserialize_number!(deserialize_i32, visit_i32, i32, "an integer");
    deserialize_number!(deserialize_i64, visit_i64, i64, "an integer");
    deserialize_number!(deserialize_u8, visit_u8, u8, "a non-negative integer");
    deserialize_number!(deserialize_u16, visit_u16, u16, "a non-negative integer");
    deserialize_number!(deserialize_u32, visit_u32, u32, "a non-negative integer");
    deserialize_number!(deserialize_u64, visit_u64, u64, "a non-negative integer");
    deserialize_number!(deserialize_f32, visit_f32, f32, "a number");
    deserialize_number!(deserialize_f64, visit_f64, f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(s) => visitor.visit_str(s).map_err(|e| self.locate(e)),
            None => Err(self.invalid_type("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            let path = self.path;
            let node = self.node;
            visitor
                .visit_some(NodeDe { node, path })
                .map_err(|e| NodeDe { node, path }.locate(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit().map_err(|e| self.locate(e))
        } else {
            Err(self.invalid_type("null"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path);
        visitor
            .visit_newtype_struct(NodeDe { node, path })
            .map_err(|e| NodeDe { node, path }.locate(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor
                .visit_seq(SeqDe {
                    items: items.iter(),
                    index: 0,
                    path: self.path,
                })
                .map_err(|e| self.locate(e)),
            _ => Err(self.invalid_type("a sequence")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(map) => visitor
                .visit_map(MapDe::new(map, self.path, false))
                .map_err(|e| self.locate(e)),
            _ => Err(self.invalid_type("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(map) => {
                let gather = fields.contains(&EXTENSIONS_KEY);
                visitor
                    .visit_map(MapDe::new(map, self.path, true).gathering(gather))
                    .map_err(|e| self.locate(e))
            }
            _ => Err(self.invalid_type("a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(s, _) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| self.locate(e)),
            Value::Map(map) if map.len() == 1 => {
                let (key, node) = map.iter().next().expect("one entry");
                visitor
                    .visit_enum(EnumDe {
                        key: &key.name,
                        node,
                        path: self.path,
                    })
                    .map_err(|e| self.locate(e))
            }
            _ => Err(self.invalid_type("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: Path<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(&self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a> {
    entries: indexmap::map::Iter<'a, super::yaml::Key, Node>,
    path: Path<'a>,
    current: Option<(&'a str, &'a Node)>,
    /// In a struct, `x-` keys are gathered rather than passed (see [`EXTENSIONS_KEY`]).
    is_struct: bool,
    gather: bool,
    extensions: Option<Node>,
    extensions_given: bool,
}

impl<'a> MapDe<'a> {
    fn new(map: &'a Map, path: Path<'a>, is_struct: bool) -> Self {
        MapDe {
            entries: map.iter(),
            path,
            current: None,
            is_struct,
            gather: false,
            extensions: None,
            extensions_given: false,
        }
    }

    fn gathering(mut self, gather: bool) -> Self {
        self.gather = gather;
        self
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, node) in self.entries.by_ref() {
            if self.is_struct && key.name.starts_with("x-") {
                if self.gather {
                    let ext = self
                        .extensions
                        .get_or_insert_with(|| Node::new(Value::Map(Map::new()), key.span.clone()));
                    if let Some(m) = ext.as_map_mut() {
                        m.insert(key.clone(), node.clone());
                    }
                }
                continue;
            }
            self.current = Some((&key.name, node));
            let key_node = Node::new(
                Value::Scalar(key.name.clone(), Style::Quoted),
                key.span.clone(),
            );
            let path = Path::Key(&self.path, &key.name);
            return seed
                .deserialize(NodeDe {
                    node: &key_node,
                    path,
                })
                .map(Some);
        }
        if self.extensions.is_some() && !self.extensions_given {
            self.extensions_given = true;
            return seed
                .deserialize(de::value::StrDeserializer::<DeError>::new(EXTENSIONS_KEY))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        if let Some((key, node)) = self.current.take() {
            let path = Path::Key(&self.path, key);
            return seed.deserialize(NodeDe { node, path });
        }
        match &self.extensions {
            Some(node) => seed.deserialize(NodeDe {
                node,
                path: self.path,
            }),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
}

struct EnumDe<'a> {
    key: &'a str,
    node: &'a Node,
    path: Path<'a>,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let v = seed.deserialize(de::value::StrDeserializer::<DeError>::new(self.key))?;
        Ok((
            v,
            NodeDe {
                node: self.node,
                path: self.path,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::yaml::parse_str;
    use indexmap::IndexMap;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Svc {
        image: Option<String>,
        #[serde(default)]
        init: bool,
        #[serde(default)]
        ports: Vec<u16>,
        #[serde(default)]
        cpus: Option<f64>,
        #[serde(rename(deserialize = "__x"), default)]
        extensions: IndexMap<String, serde_json::Value>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Top {
        services: IndexMap<String, Svc>,
    }

    fn load<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, DeError> {
        let docs = parse_str(text).unwrap();
        from_node(&docs[0], Path::Root)
    }

    #[test]
    fn types_come_from_text_as_compose_users_write_it() {
        let t: Top = load(
            "services:\n  web:\n    image: 1.0\n    init: yes\n    ports: [80, \"81\"]\n    cpus: '0.5'\n",
        )
        .unwrap();
        let web = &t.services["web"];
        assert_eq!(web.image.as_deref(), Some("1.0"));
        assert!(web.init);
        assert_eq!(web.ports, vec![80, 81]);
        assert_eq!(web.cpus, Some(0.5));
    }

    #[test]
    fn extension_keys_are_gathered() {
        let t: Top = load("services:\n  web:\n    x-foo: {a: 1}\n    image: x\n").unwrap();
        assert_eq!(
            t.services["web"].extensions["x-foo"],
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn unknown_key_points_at_the_key_with_a_suggestion() {
        let e = load::<Top>("services:\n  web:\n    image: x\n    prots: [80]\n").unwrap_err();
        assert_eq!(e.message, "unknown key `prots`");
        assert_eq!(e.suggestion.as_deref(), Some("ports"));
        assert_eq!(e.path.as_deref(), Some("services.web.prots"));
        let span = e.span.unwrap();
        assert_eq!((span.line, span.col), (4, 5));
    }

    #[test]
    fn wrong_type_names_the_innermost_value() {
        let e = load::<Top>("services:\n  web:\n    ports: [80, abc]\n").unwrap_err();
        assert_eq!(e.message, "expected a non-negative integer, found \"abc\"");
        assert_eq!(e.path.as_deref(), Some("services.web.ports[1]"));
        let span = e.span.unwrap();
        assert_eq!((span.line, span.col), (3, 17));
    }

    #[test]
    fn any_resolves_plain_scalars_with_the_core_schema() {
        let v: serde_json::Value =
            load("a: 1\nb: '1'\nc: true\nd: 1.5\ne: ~\nf: 0x10\ng: yes\nh: -3\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": 1.5, "e": null, "f": 16, "g": "yes", "h": -3})
        );
    }

    #[test]
    fn nearest_only_suggests_close_words() {
        assert_eq!(nearest("imgae", &["image", "ports"]), Some("image"));
        assert_eq!(nearest("zzzzzz", &["image", "ports"]), None);
    }
}
