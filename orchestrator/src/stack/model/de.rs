//! Shared deserialization helpers for the shapes the Compose Specification lets users
//! write in several ways (a string or a list, a list of `K=V` or a map, a scalar or a
//! mapping), and the adapter that lets a long-form mapping reached through
//! `deserialize_any` carry `x-` extensions like a struct does.
//!
//! Everything goes through serde's generic API, so the same code serves the loader's
//! YAML-node deserializer and `serde_json::Value` (used by the tests).

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::value::{MapAccessDeserializer, StrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

/// The synthetic key under which the loader hands a struct its `x-` entries.
pub(crate) const EXTENSIONS_KEY: &str = "__x";

// ---------------------------------------------------------------------------------------
// Long forms reached through `deserialize_any`
// ---------------------------------------------------------------------------------------

/// Wraps the map of a long-form value so that `x-` keys reach the struct as the one
/// synthetic `__x` entry, as the loader does in `deserialize_struct`. The loader only
/// gathers them there; a field that also accepts a scalar must use `deserialize_any`,
/// which hands the keys over as written.
pub(crate) struct WithExtensions<A> {
    inner: A,
    allow: bool,
    gathered: serde_json::Map<String, serde_json::Value>,
    state: ExtState,
}

#[derive(PartialEq)]
enum ExtState {
    Reading,
    Yielding,
    Done,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithExtensions<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        while self.state == ExtState::Reading {
            match self.inner.next_key::<String>()? {
                Some(key) if self.allow && key.starts_with("x-") => {
                    let value: serde_json::Value = self.inner.next_value()?;
                    self.gathered.insert(key, value);
                }
                Some(key) => {
                    let key: StringDeserializer<A::Error> = key.into_deserializer();
                    return seed.deserialize(key).map(Some);
                }
                None if self.gathered.is_empty() => self.state = ExtState::Done,
                None => {
                    self.state = ExtState::Yielding;
                    let key: StrDeserializer<A::Error> = EXTENSIONS_KEY.into_deserializer();
                    return seed.deserialize(key).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        if self.state == ExtState::Yielding {
            self.state = ExtState::Done;
            let map = std::mem::take(&mut self.gathered);
            return seed
                .deserialize(serde_json::Value::Object(map))
                .map_err(de::Error::custom);
        }
        self.inner.next_value_seed(seed)
    }
}

/// The deserializer [`long_form`] hands to the derived long-form function.
pub(crate) type LongForm<A> = MapAccessDeserializer<WithExtensions<A>>;

/// Deserializes a long form from a map met in `visit_map`, gathering `x-` keys into the
/// struct's `__x` field. `derived` is the derived (`remote = "Self"`) function of the
/// type, not its `Deserialize` impl, which would come back here.
pub(crate) fn long_form<'de, A, T>(
    map: A,
    derived: impl FnOnce(LongForm<A>) -> Result<T, A::Error>,
) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
{
    derived(MapAccessDeserializer::new(WithExtensions {
        inner: map,
        allow: true,
        gathered: serde_json::Map::new(),
        state: ExtState::Reading,
    }))
}

/// Like [`long_form`] for a long form where the Specification allows no `x-` keys:
/// they reach the struct as themselves and are refused as unknown fields.
pub(crate) fn long_form_strict<'de, A, T>(
    map: A,
    derived: impl FnOnce(LongForm<A>) -> Result<T, A::Error>,
) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
{
    derived(MapAccessDeserializer::new(WithExtensions {
        inner: map,
        allow: false,
        gathered: serde_json::Map::new(),
        state: ExtState::Reading,
    }))
}

// ---------------------------------------------------------------------------------------
// Scalars as text
// ---------------------------------------------------------------------------------------

/// Text of a float the way Go's `fmt.Sprint` (and so Compose) writes it for the
/// common cases: `1.5` → "1.5", `2.0` → "2".
pub(crate) fn float_text(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// What a scalar turned out to be, for fields that take several scalar types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

impl Scalar {
    /// How the value reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Str(s) => format!("{s:?}"),
            other => other.clone().into_text().unwrap_or_default(),
        }
    }

    /// The value as text, `None` for null. Numbers and booleans become their text,
    /// as Compose turns them into strings where the Specification expects a string.
    pub(crate) fn into_text(self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) => Some(float_text(f)),
            Scalar::Str(s) => Some(s),
        }
    }
}

struct ScalarVisitor(&'static str);

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
}

/// Reads any scalar (null, bool, number or string); refuses sequences and mappings
/// with `expecting` in the message.
pub(crate) fn scalar<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor(expecting))
}

/// A value the Specification types as "string or number (or boolean)": its text.
/// Null is refused.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match scalar(d, "a string, number or boolean")? {
        Scalar::Null => Err(de::Error::custom(
            "expected a string, number or boolean, found null",
        )),
        s => Ok(s.into_text().unwrap_or_default()),
    }
}

/// A scalar as text, where null is allowed and kept as `None`.
struct OptText(Option<String>);

impl<'de> Deserialize<'de> for OptText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, "a boolean, null, number or string").map(|s| OptText(s.into_text()))
    }
}

/// A scalar as text; null is refused. For list items that may be written as numbers.
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Text)
    }
}

/// `Option<String>` field whose value may be written as a number or boolean
/// (`provenance: true`, `uid: 1000`).
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    OptText::deserialize(d).map(|t| t.0)
}

/// A list whose items may be written as strings or numbers (`group_add`, `expose`,
/// `command: [sleep, 10]`); null is an empty list.
pub(crate) fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = Option::<Vec<Text>>::deserialize(d)?.unwrap_or_default();
    Ok(items.into_iter().map(|t| t.0).collect())
}

// ---------------------------------------------------------------------------------------
// String or list
// ---------------------------------------------------------------------------------------

struct StringOrList;

impl<'de> Visitor<'de> for StringOrList {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![v.to_owned()])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(vec![float_text(v)])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Text(item)) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
}

/// Fields the Specification lets users write as one string or a list (`dns`,
/// `dns_search`, `tmpfs`, `label_file`, `watch.ignore` …), always a list in the model.
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(StringOrList)
}

// ---------------------------------------------------------------------------------------
// List or dict
// ---------------------------------------------------------------------------------------

/// How a `list_or_dict` is read.
#[derive(Clone, Copy)]
enum Dict {
    /// `labels`, `sysctls` …: `K` without `=` and null values are the empty string.
    Mapping,
    /// `environment`, `build.args`: `K` alone and null are "no value" (taken from the
    /// environment later), and a space before `=` is an error.
    WithEquals,
}

struct DictVisitor {
    kind: Dict,
    what: &'static str,
}

/// Refuses `"DEBUG = true"`: Compose would set a variable named `"DEBUG "`, which is never
/// what was meant.
fn check_key(what: &str, entry: &str, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!(
            "invalid {what} entry {entry:?}: the name before `=` is empty"
        ));
    }
    if key.ends_with(char::is_whitespace) {
        return Err(format!(
            "invalid {what} entry {entry:?}: {:?} is declared with a trailing space before `=`; remove it",
            key.trim_end()
        ));
    }
    if key.starts_with(char::is_whitespace) {
        return Err(format!(
            "invalid {what} entry {entry:?}: the name starts with a space"
        ));
    }
    Ok(())
}

impl<'de> Visitor<'de> for DictVisitor {
    type Value = IndexMap<String, Option<String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a mapping or a list of KEY=VALUE strings for {}",
            self.what
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(IndexMap::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(IndexMap::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(Text(entry)) = seq.next_element()? {
            let (key, value) = match entry.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (entry.clone(), None),
            };
            if matches!(self.kind, Dict::WithEquals) {
                check_key(self.what, &entry, &key).map_err(de::Error::custom)?;
            } else if key.is_empty() {
                return Err(de::Error::custom(format!(
                    "invalid {} entry {entry:?}: the name before `=` is empty",
                    self.what
                )));
            }
            out.insert(key, value);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let OptText(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// A `list_or_dict` where a key without value is the empty string (`labels`,
/// `sysctls`, `annotations`, `deploy.labels` …).
pub(crate) fn mapping<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    let raw = d.deserialize_any(DictVisitor {
        kind: Dict::Mapping,
        what: "mapping",
    })?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A `list_or_dict` where a key without value stays unset (`environment`, hook
/// `environment`); `what` names the entries in errors.
pub(crate) fn dict_with_equals<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
    d.deserialize_any(DictVisitor {
        kind: Dict::WithEquals,
        what,
    })
}

/// `environment` (of a service or a hook).
pub(crate) fn environment<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
    dict_with_equals(d, "environment")
}

/// A plain mapping whose values may be written as numbers (`driver_opts`,
/// `storage_opt`, `ipam.options`); null values are the empty string.
pub(crate) fn text_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    let raw = Option::<IndexMap<String, OptText>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.0.unwrap_or_default()))
        .collect())
}

/// A plain mapping whose values may be numbers or null (`logging.options`).
pub(crate) fn opt_text_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
    let raw = Option::<IndexMap<String, OptText>>::deserialize(d)?.unwrap_or_default();
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

// ---------------------------------------------------------------------------------------
// Names: a list of names or a map of name → optional long form
// ---------------------------------------------------------------------------------------

struct NamesOrMap<T>(&'static str, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NamesOrMap<T> {
    type Value = IndexMap<String, Option<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a list of {} names or a mapping of name to options",
            self.0
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(IndexMap::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(IndexMap::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(Text(name)) = seq.next_element()? {
            out.insert(name, None);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: Option<T> = map.next_value()?;
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// Service `networks` and `models`: the short list of names is the map with no options.
pub(crate) fn names_or_map<'de, D, T>(
    d: D,
    what: &'static str,
) -> Result<IndexMap<String, Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(NamesOrMap(what, PhantomData))
}

/// Top-level `networks`, `volumes`, `secrets`, `configs`, `models`: `data:` with no value
/// declares the resource with every default.
pub(crate) fn map_null_default<'de, D, T>(d: D) -> Result<IndexMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let raw = Option::<IndexMap<String, Option<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Lists that Compose reads as empty when written as null.
pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Vec<T>>::deserialize(d).map(Option::unwrap_or_default)
}

// ---------------------------------------------------------------------------------------
// Numbers written as numbers or strings
// ---------------------------------------------------------------------------------------

/// An `f64` that may be written as a number or a numeric string (`cpus: "0.5"`,
/// `max_failure_ratio`), since the Specification types these as "number or string".
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match scalar(d, "a number")? {
        Scalar::Null => Ok(None),
        Scalar::Int(i) => Ok(Some(i as f64)),
        Scalar::Float(f) => Ok(Some(f)),
        Scalar::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "invalid number {s:?}: expected a decimal number like 0.5"
                ))
            }),
        Scalar::Bool(b) => Err(de::Error::custom(format!(
            "expected a number, found the boolean {b}"
        ))),
    }
}

/// CPU counts: non-negative, `0` meaning no limit.
pub(crate) fn opt_cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = opt_f64(d)?;
    match v {
        Some(c) if c < 0.0 => Err(de::Error::custom(format!(
            "invalid cpus {}: the number of CPUs must not be negative",
            float_text(c)
        ))),
        _ => Ok(v),
    }
}

/// Percentages (`mem_swappiness`, `cpu_percent`): 0 to 100.
pub(crate) fn opt_percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    match v {
        Some(p) if p > 100 => Err(de::Error::custom(format!(
            "invalid percentage {p}: expected a number from 0 to 100"
        ))),
        _ => Ok(v),
    }
}

// ---------------------------------------------------------------------------------------
// Serialization helpers
// ---------------------------------------------------------------------------------------

/// `skip_serializing_if` for `bool` fields printed only when set.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn yes() -> bool {
    true
}

/// The candidate closest to `value`, when it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(value: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // One edit is a typo even in a short word (`r0` for `ro`); longer words get more.
    let max_edits = (value.chars().count() / 4).max(1);
    candidates
        .iter()
        .map(|c| {
            let edits = strsim::damerau_levenshtein(value, c);
            let close =
                edits <= max_edits || strsim::jaro_winkler(&value.to_ascii_lowercase(), c) > 0.85;
            (close, edits, *c)
        })
        .filter(|(close, _, _)| *close)
        .min_by_key(|(_, edits, _)| *edits)
        .map(|(_, _, c)| c)
}

/// "`a`, `b` or `c`" for error messages.
pub(crate) fn one_of(candidates: &[&str]) -> String {
    let quoted: Vec<String> = candidates.iter().map(|c| format!("{c:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Declares an enum written as one of a fixed set of strings, with an error that
/// lists them (and suggests the near one) for anything else.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The spelling Compose uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => {
                        let mut msg = format!(
                            "invalid {} {:?}: expected {}",
                            $what,
                            s,
                            $crate::stack::model::de::one_of(Self::ALL)
                        );
                        if let Some(near) = $crate::stack::model::de::suggest(s, Self::ALL) {
                            msg.push_str(&format!(" (did you mean {near:?}?)"));
                        }
                        Err(msg)
                    }
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::model::Extensions;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Long {
        #[serde(default)]
        a: Option<String>,
        #[serde(rename = "__x", default)]
        ext: Extensions,
    }

    struct Either(Long);
    impl<'de> Deserialize<'de> for Either {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Either;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string or a mapping")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Either, E> {
                    Ok(Either(Long {
                        a: Some(v.into()),
                        ..Default::default()
                    }))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Either, A::Error> {
                    long_form(map, Long::deserialize).map(Either)
                }
            }
            d.deserialize_any(V)
        }
    }

    #[test]
    fn long_form_gathers_extensions() {
        let Either(l) =
            serde_json::from_value(json!({"a": "x", "x-one": 1, "x-two": {"b": true}})).unwrap();
        assert_eq!(l.a.as_deref(), Some("x"));
        assert_eq!(l.ext.get("x-one"), Some(&json!(1)));
        assert_eq!(l.ext.get("x-two"), Some(&json!({"b": true})));
    }

    #[test]
    fn long_form_without_extensions_and_unknown_keys() {
        let Either(l) = serde_json::from_value(json!({"a": "x"})).unwrap();
        assert!(l.ext.is_empty());
        let err = serde_json::from_value::<Either>(json!({"b": "x"}))
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field `b`"), "{err}");
    }

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "string_or_list")]
        list: Vec<String>,
        #[serde(default, deserialize_with = "mapping")]
        labels: IndexMap<String, String>,
        #[serde(default, deserialize_with = "environment")]
        env: IndexMap<String, Option<String>>,
        #[serde(default, deserialize_with = "opt_f64")]
        num: Option<f64>,
    }

    #[test]
    fn string_or_list_shapes() {
        let f: Fields = serde_json::from_value(json!({"list": "8.8.8.8"})).unwrap();
        assert_eq!(f.list, ["8.8.8.8"]);
        let f: Fields = serde_json::from_value(json!({"list": ["a", "b"]})).unwrap();
        assert_eq!(f.list, ["a", "b"]);
    }

    #[test]
    fn mapping_shapes() {
        let f: Fields = serde_json::from_value(json!({"labels": ["a=1", "b", "c=x=y"]})).unwrap();
        assert_eq!(f.labels["a"], "1");
        assert_eq!(f.labels["b"], "");
        assert_eq!(f.labels["c"], "x=y");
        let f: Fields =
            serde_json::from_value(json!({"labels": {"a": 1, "b": true, "c": null, "d": 1.5}}))
                .unwrap();
        assert_eq!(f.labels["a"], "1");
        assert_eq!(f.labels["b"], "true");
        assert_eq!(f.labels["c"], "");
        assert_eq!(f.labels["d"], "1.5");
    }

    #[test]
    fn mapping_with_equals_shapes() {
        let f: Fields = serde_json::from_value(json!({"env": ["A=1", "B", "C="]})).unwrap();
        assert_eq!(f.env["A"].as_deref(), Some("1"));
        assert_eq!(f.env["B"], None);
        assert_eq!(f.env["C"].as_deref(), Some(""));
        let f: Fields =
            serde_json::from_value(json!({"env": {"A": 1, "B": null, "C": false}})).unwrap();
        assert_eq!(f.env["A"].as_deref(), Some("1"));
        assert_eq!(f.env["B"], None);
        assert_eq!(f.env["C"].as_deref(), Some("false"));
    }

    #[test]
    fn mapping_with_equals_refusals() {
        let err = serde_json::from_value::<Fields>(json!({"env": ["DEBUG = true"]}))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("\"DEBUG\" is declared with a trailing space"),
            "{err}"
        );
        let err = serde_json::from_value::<Fields>(json!({"env": ["=x"]}))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("the name before `=` is empty"),
            "{err}"
        );
        let err = serde_json::from_value::<Fields>(json!({"env": {"FOO": ["1"]}}))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("expected a boolean, null, number or string"),
            "{err}"
        );
        let err = serde_json::from_value::<Fields>(json!({"env": "FOO=1"}))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("a mapping or a list of KEY=VALUE strings"),
            "{err}"
        );
    }

    #[test]
    fn numbers_from_strings() {
        let f: Fields = serde_json::from_value(json!({"num": "0.5"})).unwrap();
        assert_eq!(f.num, Some(0.5));
        let f: Fields = serde_json::from_value(json!({"num": 2})).unwrap();
        assert_eq!(f.num, Some(2.0));
        let err = serde_json::from_value::<Fields>(json!({"num": "half"}))
            .err()
            .unwrap();
        assert!(err.to_string().contains("invalid number \"half\""), "{err}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("hots", &["host", "private"]), Some("host"));
        assert_eq!(suggest("zzz", &["host", "private"]), None);
        assert_eq!(one_of(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }
}
