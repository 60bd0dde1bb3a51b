//! Quotas as text: `4/s`, `120/min burst 10`, `4/s name burst`, `4/s, 120/min`.
//!
//! # Grammar
//!
//! ```text
//! quota   = limit "/" window *( clause )
//! limit   = digits                       ; 1 ..= 4294967295
//! window  = [ digits ] unit              ; "s" is "1s"; "10s", "90min", "500ms"
//! unit    = "d" / "h" / "min" / "s" / "ms" / "us" / "ns"
//! clause  = "burst" digits               ; default: the limit
//!         / "name" ( bare / quoted )     ; default: "second", "minute", "hour", "day", "10s", ...
//! bare    = 1*( ALPHA / DIGIT / "_" / "-" / "." / ":" )
//! quoted  = DQUOTE *( char / "\" DQUOTE / "\\" ) DQUOTE
//! quotas  = quota *( "," quota )
//! ```
//!
//! Whitespace may surround every part. [`Display`](std::fmt::Display) writes the shortest
//! form that parses back to an equal value: the largest unit that divides the window,
//! `burst` only when it differs from the limit, `name` only when it differs from the
//! window's default name, quoted only when a bare name would not parse.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{Quota, QuotaError, Quotas, default_name};

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Units, largest first (the order `Display` tries them in).
const UNITS: [(&str, u64); 7] = [
    ("d", 86_400 * S),
    ("h", 3_600 * S),
    ("min", 60 * S),
    ("s", S),
    ("ms", MS),
    ("us", US),
    ("ns", NS),
];

/// Why a quota (or a quota list) could not be parsed.
///
/// Its `Display` quotes the input and names the part that was wrong:
///
/// ```
/// use tower_ratelimit::Quota;
/// let err = "4/sec".parse::<Quota>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#""4/sec": unknown unit "sec"; expected s, min, h, d (or ms, us, ns)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseQuotaError {
    input: String,
    kind: ParseErrorKind,
}

/// What was wrong in a [`ParseQuotaError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing (or only whitespace) where a quota was expected.
    Empty,
    /// No `/` between the limit and the window.
    MissingSlash,
    /// The limit is not a whole number that fits in 32 bits.
    BadLimit(String),
    /// The window's count is not a whole number, or the window overflows 64-bit
    /// nanoseconds.
    BadWindow(String),
    /// The window's unit is none of `d`, `h`, `min`, `s`, `ms`, `us`, `ns`.
    UnknownUnit(String),
    /// The burst is not a whole number that fits in 32 bits.
    BadBurst(String),
    /// A clause keyword (`burst`, `name`) came without its value.
    MissingValue(&'static str),
    /// A word after the window that is neither `burst` nor `name`.
    UnknownClause(String),
    /// The same clause twice.
    Duplicate(&'static str),
    /// A quoted name without its closing quote, or with a bad escape.
    BadName(String),
    /// The numbers parsed but make no valid quota (zero limit, interval below 1 ns, ...)
    /// or no valid set: the same error the numeric constructors return.
    Invalid(QuotaError),
}

impl ParseQuotaError {
    fn new(input: &str, kind: ParseErrorKind) -> Self {
        ParseQuotaError {
            input: input.trim().to_owned(),
            kind,
        }
    }

    /// The text that failed to parse (one item of a list, or the whole list for set-level
    /// errors), trimmed.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

impl fmt::Display for ParseQuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.input, self.kind)
    }
}

impl fmt::Display for ParseErrorKind {
    /// What was wrong, without the input (which [`ParseQuotaError`] shows first).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Empty => f.write_str("empty quota; expected e.g. 4/s or 120/min"),
            ParseErrorKind::MissingSlash => {
                f.write_str(r#"missing "/" between limit and window; expected e.g. 4/s"#)
            }
            ParseErrorKind::BadLimit(s) => {
                write!(f, "bad limit {s:?}; expected a whole number of requests")
            }
            ParseErrorKind::BadWindow(s) => {
                write!(
                    f,
                    "bad window {s:?}; expected a unit with an optional count, e.g. s or 10s"
                )
            }
            ParseErrorKind::UnknownUnit(s) => {
                write!(
                    f,
                    "unknown unit {s:?}; expected s, min, h, d (or ms, us, ns)"
                )
            }
            ParseErrorKind::BadBurst(s) => write!(f, "bad burst {s:?}; expected a whole number"),
            ParseErrorKind::MissingValue(k) => write!(f, "{k:?} needs a value"),
            ParseErrorKind::UnknownClause(s) => {
                write!(f, "unexpected {s:?}; expected \"burst N\" or \"name NAME\"")
            }
            ParseErrorKind::Duplicate(k) => write!(f, "{k:?} given twice"),
            ParseErrorKind::BadName(s) => write!(f, "bad name {s}"),
            ParseErrorKind::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ParseQuotaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ParseErrorKind::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

/// Splits off the next whitespace-separated word.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Reads a name (bare or quoted) at the start of `s`; returns it and the rest.
fn name(s: &str) -> Result<(String, &str), ParseErrorKind> {
    let s = s.trim_start();
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find(|c: char| !is_bare(c)).unwrap_or(s.len());
        let (bare, rest) = s.split_at(end);
        if bare.is_empty() {
            return Err(ParseErrorKind::MissingValue("name"));
        }
        if rest.starts_with(|c: char| !c.is_whitespace()) {
            return Err(ParseErrorKind::BadName(format!(
                "{:?}; quote names with characters other than letters, digits, _ - . :",
                word(s).0
            )));
        }
        return Ok((bare.to_owned(), rest));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => {
                    return Err(ParseErrorKind::BadName(format!(
                        "escape \"\\{e}\"; only \\\" and \\\\ are escapes"
                    )));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseErrorKind::BadName(
        "without its closing quote".to_owned(),
    ))
}

fn number<T: FromStr>(s: &str) -> Option<T> {
    // `u32::from_str` also takes a leading "+"; the grammar says digits only.
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses a window such as `s`, `10s`, `90min`, `500ms`.
pub(crate) fn parse_window(s: &str) -> Result<Duration, ParseErrorKind> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (count, unit) = s.split_at(split);
    if unit.is_empty() {
        return Err(ParseErrorKind::BadWindow(s.to_owned()));
    }
    let count = if count.is_empty() {
        1
    } else {
        number::<u64>(count).ok_or_else(|| ParseErrorKind::BadWindow(s.to_owned()))?
    };
    let (_, unit_ns) = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .ok_or_else(|| ParseErrorKind::UnknownUnit(unit.to_owned()))?;
    count
        .checked_mul(*unit_ns)
        .map(Duration::from_nanos)
        .ok_or_else(|| ParseErrorKind::BadWindow(s.to_owned()))
}

/// Writes a window in the largest unit that divides it (`s`, `10s`, `90min`).
pub(crate) fn write_window(f: &mut fmt::Formatter<'_>, window_ns: u64) -> fmt::Result {
    let (unit, unit_ns) = UNITS
        .iter()
        .find(|(_, n)| window_ns.is_multiple_of(*n))
        .copied()
        .unwrap_or(("ns", 1));
    match window_ns / unit_ns {
        1 => f.write_str(unit),
        k => write!(f, "{k}{unit}"),
    }
}

fn parse_quota(input: &str) -> Result<Quota, ParseErrorKind> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseErrorKind::Empty);
    }
    let (limit, rest) = s.split_once('/').ok_or(ParseErrorKind::MissingSlash)?;
    let limit = limit.trim();
    let limit: u32 = number(limit).ok_or_else(|| ParseErrorKind::BadLimit(limit.to_owned()))?;
    let (window, mut rest) = word(rest);
    let window = parse_window(window)?;
    let mut burst = None;
    let mut named = None;
    loop {
        let (keyword, after) = word(rest);
        match keyword {
            "" => break,
            "burst" => {
                if burst.is_some() {
                    return Err(ParseErrorKind::Duplicate("burst"));
                }
                let (value, after) = word(after);
                if value.is_empty() {
                    return Err(ParseErrorKind::MissingValue("burst"));
                }
                burst = Some(
                    number::<u32>(value)
                        .ok_or_else(|| ParseErrorKind::BadBurst(value.to_owned()))?,
                );
                rest = after;
            }
            "name" => {
                if named.is_some() {
                    return Err(ParseErrorKind::Duplicate("name"));
                }
                let (value, after) = name(after)?;
                named = Some(value);
                rest = after;
            }
            other => return Err(ParseErrorKind::UnknownClause(other.to_owned())),
        }
    }
    let mut quota = Quota::new(limit, window).map_err(ParseErrorKind::Invalid)?;
    if let Some(b) = burst {
        quota = quota.with_burst(b).map_err(ParseErrorKind::Invalid)?;
    }
    if let Some(n) = named {
        quota = quota.named(n);
    }
    Ok(quota)
}

impl FromStr for Quota {
    type Err = ParseQuotaError;

    /// Parses `4/s`, `120/min`, `5000/h`, `10000/d`, `100/10s`, `100/min burst 10`,
    /// `4/s name burst`, `1/s name "my quota"`; see the [grammar](crate::quota::parse).
    ///
    /// ```
    /// use tower_ratelimit::Quota;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q: Quota = "100/min burst 10 name minute".parse()?;
    /// assert_eq!(q, Quota::per_minute(100)?.with_burst(10)?.named("minute"));
    /// assert_eq!(q.to_string(), "100/min burst 10");
    /// assert!("0/s".parse::<Quota>().is_err(), "the same checks as Quota::new");
    /// # Ok(()) }
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quota(s).map_err(|kind| ParseQuotaError::new(s, kind))
    }
}

impl fmt::Display for Quota {
    /// The text form, which [`FromStr`] reads back to an equal quota.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.limit)?;
        write_window(f, self.window_ns)?;
        if self.burst != self.limit {
            write!(f, " burst {}", self.burst)?;
        }
        if self.name != default_name(self.window_ns) {
            f.write_str(" name ")?;
            if !self.name.is_empty() && self.name.chars().all(is_bare) {
                f.write_str(&self.name)?;
            } else {
                f.write_str("\"")?;
                for c in self.name.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            }
        }
        Ok(())
    }
}

/// Splits a list at the commas that are outside quoted names.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                cuts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&s[start..]);
    cuts.into_iter()
}

impl FromStr for Quotas {
    type Err = ParseQuotaError;

    /// Parses a comma-separated list of 1 to [`MAX_QUOTAS`](super::MAX_QUOTAS) quotas.
    ///
    /// ```
    /// use tower_ratelimit::Quotas;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let set: Quotas = "4/s name burst, 120/min".parse()?;
    /// assert_eq!(set, Quotas::claid());
    /// assert_eq!(set.to_string(), "4/s name burst, 120/min");
    /// let err = "4/s, 4/sec".parse::<Quotas>().unwrap_err();
    /// assert_eq!(err.input(), "4/sec", "the error names the bad item");
    /// # Ok(()) }
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let quotas = split_list(s)
            .map(str::parse)
            .collect::<Result<Vec<Quota>, _>>()?;
        Quotas::build(quotas).map_err(|e| ParseQuotaError::new(s, ParseErrorKind::Invalid(e)))
    }
}

impl fmt::Display for Quotas {
    /// The comma-separated text form, which [`FromStr`] reads back to an equal set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, q) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            q.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Quota, ParseErrorKind> {
        s.parse::<Quota>().map_err(|e| e.kind)
    }

    #[test]
    fn the_documented_forms() {
        let q = |n, secs| Quota::new(n, Duration::from_secs(secs)).expect("valid");
        assert_eq!(p("4/s"), Ok(q(4, 1)));
        assert_eq!(p("120/min"), Ok(q(120, 60)));
        assert_eq!(p("5000/h"), Ok(q(5000, 3600)));
        assert_eq!(p("10000/d"), Ok(q(10_000, 86_400)));
        assert_eq!(p(" 15 / s "), Ok(q(15, 1)));
        assert_eq!(p("100/10s"), Ok(q(100, 10)));
        assert_eq!(
            p("100/min burst 10"),
            Ok(q(100, 60).with_burst(10).expect("valid"))
        );
        assert_eq!(p("4/s name burst"), Ok(q(4, 1).named("burst")));
        assert_eq!(
            p(r#"4/s name "a \"b\", c""#),
            Ok(q(4, 1).named(r#"a "b", c"#))
        );
        assert_eq!(
            p("5/500ms"),
            Ok(Quota::new(5, Duration::from_millis(500)).expect("valid"))
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let msg = |s: &str| s.parse::<Quota>().expect_err("invalid").to_string();
        assert_eq!(
            msg("4/sec"),
            r#""4/sec": unknown unit "sec"; expected s, min, h, d (or ms, us, ns)"#
        );
        assert_eq!(p("four/s"), Err(ParseErrorKind::BadLimit("four".into())));
        assert_eq!(p("4/"), Err(ParseErrorKind::BadWindow("".into())));
        assert_eq!(p("4"), Err(ParseErrorKind::MissingSlash));
        assert_eq!(p("  "), Err(ParseErrorKind::Empty));
        assert_eq!(p("+4/s"), Err(ParseErrorKind::BadLimit("+4".into())));
        assert_eq!(p("4/s burst"), Err(ParseErrorKind::MissingValue("burst")));
        assert_eq!(p("4/s burst x"), Err(ParseErrorKind::BadBurst("x".into())));
        assert_eq!(
            p("4/s burst 1 burst 2"),
            Err(ParseErrorKind::Duplicate("burst"))
        );
        assert_eq!(
            p("4/s per"),
            Err(ParseErrorKind::UnknownClause("per".into()))
        );
        assert!(matches!(p("4/s name \"x"), Err(ParseErrorKind::BadName(_))));
        assert!(matches!(p("4/s name a,b"), Err(ParseErrorKind::BadName(_))));
        // Zero and absurd numbers: exactly the constructors' errors.
        assert_eq!(
            p("0/s"),
            Err(ParseErrorKind::Invalid(QuotaError::ZeroLimit))
        );
        assert_eq!(
            p("1/0s"),
            Err(ParseErrorKind::Invalid(QuotaError::ZeroWindow))
        );
        assert_eq!(
            p("1/s burst 0"),
            Err(ParseErrorKind::Invalid(QuotaError::ZeroBurst))
        );
        assert_eq!(
            p("1/h burst 4294967295"),
            Err(ParseErrorKind::Invalid(QuotaError::SpanTooLong))
        );
        assert!(matches!(
            p("10/9ns"),
            Err(ParseErrorKind::Invalid(QuotaError::IntervalTooSmall { .. }))
        ));
        assert_eq!(
            p("4294967296/s"),
            Err(ParseErrorKind::BadLimit("4294967296".into()))
        );
        assert_eq!(
            p("1/99999999999999999999d"),
            Err(ParseErrorKind::BadWindow("99999999999999999999d".into()))
        );
        assert_eq!(
            p("1/999999999999d"),
            Err(ParseErrorKind::BadWindow("999999999999d".into()))
        );
    }

    #[test]
    fn lists() {
        let set: Quotas = "4/s name burst , 120/min name minute"
            .parse()
            .expect("valid");
        assert_eq!(set, Quotas::claid());
        let e = "4/s,".parse::<Quotas>().expect_err("trailing comma");
        assert_eq!((e.input(), e.kind()), ("", &ParseErrorKind::Empty));
        let e = "1/s, 1/s, 1/s, 1/s, 1/s"
            .parse::<Quotas>()
            .expect_err("five");
        assert_eq!(
            e.kind(),
            &ParseErrorKind::Invalid(QuotaError::TooManyQuotas(5))
        );
        assert_eq!(
            r#"1/s name "a,b", 2/min"#.parse::<Quotas>().map(|s| s.len()),
            Ok(2),
            "commas inside quoted names do not split"
        );
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,8}",
            any::<String>(),
            "[ ,\"\\\\a-z]{0,6}",
        ]
    }

    fn arb_quota() -> impl Strategy<Value = Quota> {
        let window = prop_oneof![
            (1u64..1_000_000_000_000u64).prop_map(Duration::from_nanos),
            (1u64..400u64).prop_map(|h| Duration::from_secs(h * 3600)),
            (1u64..100u64).prop_map(|d| Duration::from_secs(d * 86_400)),
        ];
        (
            1u32..100_000,
            window,
            proptest::option::of(1u32..100_000),
            proptest::option::of(arb_name()),
        )
            .prop_filter_map("valid quota", |(n, w, b, name)| {
                let mut q = Quota::new(n, w).ok()?;
                if let Some(b) = b {
                    q = q.with_burst(b).ok()?;
                }
                Some(match name {
                    Some(name) => q.named(name),
                    None => q,
                })
            })
    }

    proptest! {
        #[test]
        fn display_parses_back(q in arb_quota()) {
            let text = q.to_string();
            prop_assert_eq!(text.parse::<Quota>(), Ok(q), "{}", text);
        }

        #[test]
        fn set_display_parses_back(qs in proptest::collection::vec(arb_quota(), 1..=4)) {
            if let Ok(set) = Quotas::new(qs) {
                let text = set.to_string();
                prop_assert_eq!(text.parse::<Quotas>(), Ok(set), "{}", text);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = s.parse::<Quota>();
            let _ = s.parse::<Quotas>();
        }

        #[test]
        fn near_miss_text_never_panics(s in "[0-9/ ,a-z\"\\\\]{0,24}") {
            if let Ok(q) = s.parse::<Quota>() {
                // Whatever parses prints to text that parses to the same quota.
                prop_assert_eq!(q.to_string().parse::<Quota>(), Ok(q));
            }
            let _ = s.parse::<Quotas>();
        }
    }
}
