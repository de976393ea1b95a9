//! Byte sizes, durations and file modes as Compose writes them.
//!
//! Byte sizes follow the Specification's "byte value" (`2b`, `1024kb`, `300m`, `1gb`) as
//! Compose reads it (docker/go-units `RAMInBytes`): units are binary multiples
//! (`k` = 1024), case-insensitive, optionally followed by `b` or `ib`, with an optional
//! space and a fractional amount (`2.5g`); `t` and `p` are accepted too. Printed as an
//! integer number of bytes.
//!
//! Durations follow Go's `time.ParseDuration` extended with `d` and `w` as Compose does
//! (`1m30s`, `500ms`, `1.5s`, `2us`, `1h5m30s20ms`, `1d`); a bare number is refused
//! (except `0`), because Compose refuses it and a silent unit would be a guess. Printed
//! the way Go prints a `time.Duration` (`1m30s`, `500ms`, `1h0m0s`).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::float_text;

// ---------------------------------------------------------------------------------------
// Byte sizes
// ---------------------------------------------------------------------------------------

/// A size in bytes (`mem_limit`, `shm_size`, `tmpfs.size`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

const BYTE_UNITS: &str = "b, k, kb, m, mb, g, gb, t or p (e.g. \"512m\")";

/// Parses a Compose byte value.
pub fn parse_byte_size(text: &str) -> Result<ByteSize, String> {
    let bad = |why: String| format!("invalid byte size {text:?}: {why}");
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(split);
    if number.is_empty() {
        return Err(bad(format!(
            "expected a number followed by an optional unit: {BYTE_UNITS}"
        )));
    }
    let unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(bad(format!("unknown unit {rest:?}, expected {BYTE_UNITS}"))),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| bad("too large".into()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| bad(format!("{number:?} is not a number")))?;
    if multiplier == 1 {
        return Err(bad("not a whole number of bytes".into()));
    }
    let bytes = value * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(bad("too large".into()));
    }
    Ok(ByteSize(bytes as u64))
}

struct ByteSizeVisitor;

impl<'de> Visitor<'de> for ByteSizeVisitor {
    type Value = ByteSize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte size: a number of bytes or a string like \"512m\"")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid byte size {v}: must not be negative")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        if v < 0.0 {
            return Err(E::custom(format!(
                "invalid byte size {}: must not be negative",
                float_text(v)
            )));
        }
        if v.fract() != 0.0 || !v.is_finite() || v >= u64::MAX as f64 {
            return Err(E::custom(format!(
                "invalid byte size {}: must be a whole number of bytes",
                float_text(v)
            )));
        }
        Ok(ByteSize(v as u64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        parse_byte_size(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// `memswap_limit`: a byte size, or `-1` for unlimited swap as the Specification allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapLimit {
    Unlimited,
    Limit(ByteSize),
}

impl<'de> Deserialize<'de> for SwapLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SwapLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size like \"1g\", or -1 for unlimited swap")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SwapLimit, E> {
                Ok(SwapLimit::Limit(ByteSize(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SwapLimit, E> {
                match v {
                    -1 => Ok(SwapLimit::Unlimited),
                    v => ByteSizeVisitor.visit_i64(v).map(SwapLimit::Limit),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SwapLimit, E> {
                if v == -1.0 {
                    return Ok(SwapLimit::Unlimited);
                }
                ByteSizeVisitor.visit_f64(v).map(SwapLimit::Limit)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SwapLimit, E> {
                if v.trim() == "-1" {
                    return Ok(SwapLimit::Unlimited);
                }
                parse_byte_size(v).map(SwapLimit::Limit).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SwapLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SwapLimit::Unlimited => s.serialize_i64(-1),
            SwapLimit::Limit(b) => b.serialize(s),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------

/// A duration (`healthcheck.interval`, `stop_grace_period`, `deploy.*.delay` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

const NANOS_PER: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
];

/// Parses a Compose duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if s == "0" {
        return Ok(Duration::default());
    }
    if s.is_empty() {
        return Err(bad(
            "expected a number and a unit, like \"10s\" or \"1m30s\"",
        ));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad("expected a number before each unit"));
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(if total == 0 && rest.is_empty() {
                format!(
                    "invalid duration {text:?}: missing unit; write it with one, like \"{}s\" (us, ms, s, m, h, d, w)",
                    s
                )
            } else {
                bad("missing unit after the last number")
            });
        }
        let Some(&(_, per)) = NANOS_PER.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(&format!(
                "unknown unit {unit:?}, expected ns, us, ms, s, m, h, d or w"
            )));
        };
        let too_large = || bad("too large");
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_large())?
        };
        let mut part = whole.checked_mul(per).ok_or_else(too_large)?;
        if !frac.is_empty() {
            // Digits past nanosecond precision do not change the result.
            let digits = &frac[..frac.len().min(24)];
            let scale = 10u128.pow(digits.len() as u32);
            let f: u128 = digits.parse().map_err(|_| too_large())?;
            part += f.checked_mul(per).ok_or_else(too_large)? / scale;
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
        s = rest;
    }
    let nanos = u64::try_from(total).map_err(|_| bad("too large"))?;
    Ok(Duration(std::time::Duration::from_nanos(nanos)))
}

/// Formats `v / 10^prec` with trailing zeros of the fraction dropped, as Go's
/// `fmtFrac`/`fmtInt` pair does.
fn push_frac(out: &mut String, v: u64, prec: u32) {
    let scale = 10u64.pow(prec);
    let (int, frac) = (v / scale, v % scale);
    out.push_str(&int.to_string());
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = prec as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `2µs`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX);
        let mut out = String::new();
        if nanos < 1_000_000_000 {
            match nanos {
                0 => out.push_str("0s"),
                n if n < 1_000 => {
                    out.push_str(&n.to_string());
                    out.push_str("ns");
                }
                n if n < 1_000_000 => {
                    push_frac(&mut out, n, 3);
                    out.push_str("\u{b5}s");
                }
                n => {
                    push_frac(&mut out, n, 6);
                    out.push_str("ms");
                }
            }
            return f.write_str(&out);
        }
        let hours = nanos / 3_600_000_000_000;
        let minutes = nanos / 60_000_000_000 % 60;
        let secs_nanos = nanos % 60_000_000_000;
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        push_frac(&mut out, secs_nanos, 9);
        out.push('s');
        f.write_str(&out)
    }
}

struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration like \"10s\" or \"1m30s\"")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        parse_duration(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        parse_duration(&v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        parse_duration(&float_text(v)).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `cpu_rt_period` / `cpu_rt_runtime`: the Specification takes an integer number of
/// microseconds or a duration. Held and printed as microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Microseconds(pub u64);

impl<'de> Deserialize<'de> for Microseconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Microseconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of microseconds or a duration like \"400ms\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Microseconds, E> {
                Ok(Microseconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Microseconds, E> {
                u64::try_from(v)
                    .map(Microseconds)
                    .map_err(|_| E::custom(format!("invalid time {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Microseconds, E> {
                if let Ok(us) = v.trim().parse::<u64>() {
                    return Ok(Microseconds(us));
                }
                let d = parse_duration(v).map_err(E::custom)?;
                u64::try_from(d.0.as_micros())
                    .map(Microseconds)
                    .map_err(|_| E::custom(format!("invalid duration {v:?}: too large")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Microseconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

// ---------------------------------------------------------------------------------------
// File modes
// ---------------------------------------------------------------------------------------

/// A file permission mode (`secrets[].mode`, `configs[].mode`, `tmpfs.mode`).
///
/// The Specification gives these modes in octal (`0440`, `0o440`, `1777`), but YAML 1.2
/// would read a plain `0440` as decimal 440. So the mode is read from the text as
/// written, always in octal (with or without `0`/`0o`): the loader hands it over as
/// text. (Compose reads an unquoted `440` as decimal 440, i.e. `0670`, which is never
/// what was meant.) A deserializer that hands over a number has already chosen the
/// base, so numbers are taken as they are. Printed in octal as a string (`"0440"`),
/// as `docker compose config` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileMode(pub u32);

/// Parses a mode from its text.
pub fn parse_file_mode(text: &str) -> Result<FileMode, String> {
    let s = text.trim();
    let digits = s
        .strip_prefix("0o")
        .or_else(|| s.strip_prefix("0O"))
        .unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8).map_err(|_| {
        format!("invalid file mode {text:?}: expected an octal mode like \"0440\" or \"0o755\"")
    })?;
    if mode > 0o7777 {
        return Err(format!("invalid file mode {text:?}: larger than 07777"));
    }
    Ok(FileMode(mode))
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file mode like \"0440\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .map(FileMode)
                    .ok_or_else(|| E::custom(format!("invalid file mode {v}: larger than 07777")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "invalid file mode {v}: must not be negative"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileMode, E> {
                parse_file_mode(v).map_err(E::custom)
            }
        }
        // Asked as a string so that the loader hands over the text as written.
        d.deserialize_str(V)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0{:o}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn size(s: &str) -> u64 {
        parse_byte_size(s).unwrap().0
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(size("512"), 512);
        assert_eq!(size("512b"), 512);
        assert_eq!(size("100k"), 100 * 1024);
        assert_eq!(size("100kb"), 100 * 1024);
        assert_eq!(size("100KiB"), 100 * 1024);
        assert_eq!(size("512m"), 512 << 20);
        assert_eq!(size("512M"), 512 << 20);
        assert_eq!(size("1g"), 1 << 30);
        assert_eq!(size("1gb"), 1 << 30);
        assert_eq!(size("1GB"), 1 << 30);
        assert_eq!(size("2.5g"), 5 << 29);
        assert_eq!(size("1 g"), 1 << 30);
        assert_eq!(size("2t"), 2 << 40);
    }

    #[test]
    fn byte_size_refusals() {
        let err = parse_byte_size("12x").unwrap_err();
        assert!(
            err.starts_with("invalid byte size \"12x\": unknown unit \"x\""),
            "{err}"
        );
        let err = parse_byte_size("lots").unwrap_err();
        assert!(err.contains("expected a number"), "{err}");
        let err = parse_byte_size("1.5").unwrap_err();
        assert!(err.contains("not a whole number of bytes"), "{err}");
        let err = parse_byte_size("1gbb").unwrap_err();
        assert!(err.contains("unknown unit \"gbb\""), "{err}");
        let err = parse_byte_size("99999999999999p").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn byte_size_serde() {
        assert_eq!(
            serde_json::from_value::<ByteSize>(json!(1024)).unwrap(),
            ByteSize(1024)
        );
        assert_eq!(
            serde_json::from_value::<ByteSize>(json!("1k")).unwrap(),
            ByteSize(1024)
        );
        assert_eq!(
            serde_json::from_value::<ByteSize>(json!(2.0)).unwrap(),
            ByteSize(2)
        );
        let err = serde_json::from_value::<ByteSize>(json!(0.0001)).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid byte size 0.0001: must be a whole number of bytes"),
            "{err}"
        );
        let err = serde_json::from_value::<ByteSize>(json!(-1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid byte size -1: must not be negative"),
            "{err}"
        );
        assert_eq!(
            serde_json::to_value(ByteSize(1 << 20)).unwrap(),
            json!(1048576)
        );
    }

    #[test]
    fn swap_limit() {
        assert_eq!(
            serde_json::from_value::<SwapLimit>(json!(-1)).unwrap(),
            SwapLimit::Unlimited
        );
        assert_eq!(
            serde_json::from_value::<SwapLimit>(json!("-1")).unwrap(),
            SwapLimit::Unlimited
        );
        assert_eq!(
            serde_json::from_value::<SwapLimit>(json!("1g")).unwrap(),
            SwapLimit::Limit(ByteSize(1 << 30))
        );
        assert_eq!(
            serde_json::to_value(SwapLimit::Unlimited).unwrap(),
            json!(-1)
        );
        assert!(serde_json::from_value::<SwapLimit>(json!(-2)).is_err());
    }

    fn dur(s: &str) -> std::time::Duration {
        parse_duration(s).unwrap().0
    }

    #[test]
    fn durations() {
        use std::time::Duration as D;
        assert_eq!(dur("10s"), D::from_secs(10));
        assert_eq!(dur("1m30s"), D::from_secs(90));
        assert_eq!(dur("1h"), D::from_secs(3600));
        assert_eq!(dur("500ms"), D::from_millis(500));
        assert_eq!(dur("1.5s"), D::from_millis(1500));
        assert_eq!(dur(".5s"), D::from_millis(500));
        assert_eq!(dur("2us"), D::from_micros(2));
        assert_eq!(dur("2µs"), D::from_micros(2));
        assert_eq!(dur("3ns"), D::from_nanos(3));
        assert_eq!(dur("1h5m30s20ms"), D::from_millis(3_930_020));
        assert_eq!(dur("1d"), D::from_secs(86_400));
        assert_eq!(dur("1w"), D::from_secs(604_800));
        assert_eq!(dur("0"), D::ZERO);
        assert_eq!(dur("+5s"), D::from_secs(5));
    }

    #[test]
    fn duration_refusals() {
        let err = parse_duration("10").unwrap_err();
        assert_eq!(
            err,
            "invalid duration \"10\": missing unit; write it with one, like \"10s\" (us, ms, s, m, h, d, w)"
        );
        let err = parse_duration("10x").unwrap_err();
        assert!(err.contains("unknown unit \"x\""), "{err}");
        let err = parse_duration("-1s").unwrap_err();
        assert!(err.contains("must not be negative"), "{err}");
        let err = parse_duration("").unwrap_err();
        assert!(err.contains("expected a number and a unit"), "{err}");
        let err = parse_duration("1m30").unwrap_err();
        assert!(err.contains("missing unit after the last number"), "{err}");
        let err = parse_duration("s").unwrap_err();
        assert!(err.contains("expected a number before each unit"), "{err}");
        let err = parse_duration("99999999999h").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn duration_go_format() {
        let show = |s: &str| parse_duration(s).unwrap().to_string();
        assert_eq!(show("1m30s"), "1m30s");
        assert_eq!(show("90s"), "1m30s");
        assert_eq!(show("1h"), "1h0m0s");
        assert_eq!(show("500ms"), "500ms");
        assert_eq!(show("1.5s"), "1.5s");
        assert_eq!(show("2us"), "2µs");
        assert_eq!(show("1500ns"), "1.5µs");
        assert_eq!(show("3ns"), "3ns");
        assert_eq!(show("0"), "0s");
        assert_eq!(show("1h5m30s20ms"), "1h5m30.02s");
        assert_eq!(show("1d"), "24h0m0s");
        // What is printed reads back as the same value.
        for s in ["1h5m30s20ms", "1.5µs", "24h0m0s", "0s", "1m0.000000001s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&d.to_string()).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn duration_serde() {
        let d: Duration = serde_json::from_value(json!("1m30s")).unwrap();
        assert_eq!(serde_json::to_value(d).unwrap(), json!("1m30s"));
        assert_eq!(
            serde_json::from_value::<Duration>(json!(0)).unwrap(),
            Duration::default()
        );
        let err = serde_json::from_value::<Duration>(json!(10)).unwrap_err();
        assert!(err.to_string().contains("missing unit"), "{err}");
    }

    #[test]
    fn microseconds() {
        let us = |v| serde_json::from_value::<Microseconds>(v).unwrap().0;
        assert_eq!(us(json!(95000)), 95000);
        assert_eq!(us(json!("95000")), 95000);
        assert_eq!(us(json!("400ms")), 400_000);
        assert_eq!(us(json!("1400us")), 1400);
        assert!(serde_json::from_value::<Microseconds>(json!("soon")).is_err());
    }

    #[test]
    fn file_modes() {
        assert_eq!(parse_file_mode("0440").unwrap(), FileMode(0o440));
        assert_eq!(parse_file_mode("0o440").unwrap(), FileMode(0o440));
        assert_eq!(parse_file_mode("440").unwrap(), FileMode(0o440));
        assert_eq!(parse_file_mode("1777").unwrap(), FileMode(0o1777));
        assert!(parse_file_mode("288")
            .unwrap_err()
            .contains("expected an octal mode"));
        assert_eq!(parse_file_mode("0").unwrap(), FileMode(0));
        let err = parse_file_mode("0999").unwrap_err();
        assert!(
            err.starts_with("invalid file mode \"0999\": expected an octal mode"),
            "{err}"
        );
        let err = parse_file_mode("077777").unwrap_err();
        assert!(err.contains("larger than 07777"), "{err}");
        assert_eq!(
            serde_json::from_value::<FileMode>(json!("0440")).unwrap(),
            FileMode(0o440)
        );
        assert_eq!(
            serde_json::to_value(FileMode(0o440)).unwrap(),
            json!("0440")
        );
        assert_eq!(serde_json::to_value(FileMode(0)).unwrap(), json!("00"));
    }
}
