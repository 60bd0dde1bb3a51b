//! `serde` support (feature `serde`): quotas as their text form or as tables.
//!
//! A [`Quota`] reads from its [text form](super::parse) (`"100/min burst 10"`) or from a
//! table `{ limit = 100, window = "1min", burst = 10, name = "minute" }` whose `window`
//! is a window string (`"1s"`, `"90min"`) or a whole number of seconds; `burst` and
//! `name` are optional. A [`Quotas`] set reads from a list of quotas or from one
//! comma-separated string. Both write their text form, which reads back to an equal
//! value.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::parse::parse_window;
use super::{MAX_QUOTAS, Quota, Quotas};

impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A window: a string such as `"1min"`, or whole seconds.
struct Window(Duration);

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a window such as "1s", "1min", "10s", or a number of seconds"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Window, E> {
                parse_window(s)
                    .map(Window)
                    .map_err(|kind| E::custom(format_args!("window {s:?}: {kind}")))
            }
            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Window, E> {
                Ok(Window(Duration::from_secs(secs)))
            }
            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Window, E> {
                u64::try_from(secs)
                    .map(|s| Window(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format_args!("window of {secs} seconds is negative")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaTable {
    limit: u32,
    window: Window,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    name: Option<String>,
}

impl QuotaTable {
    fn build(self) -> Result<Quota, super::QuotaError> {
        let mut q = Quota::new(self.limit, self.window.0)?;
        if let Some(b) = self.burst {
            q = q.with_burst(b)?;
        }
        if let Some(name) = self.name {
            q = q.named(name);
        }
        Ok(q)
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Quota;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a quota such as "4/s", or a table {limit, window, burst, name}"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Quota, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Quota, A::Error> {
                let table = QuotaTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                table.build().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Quotas {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for q in self {
            seq.serialize_element(q)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Quotas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Quotas;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"a list of 1 to 4 quotas such as ["4/s", "120/min"], or "4/s, 120/min""#,
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Quotas, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Quotas, A::Error> {
                let mut quotas = Vec::with_capacity(MAX_QUOTAS);
                while let Some(q) = seq.next_element::<Quota>()? {
                    // Bounded: a hostile file cannot make us collect a huge list.
                    if quotas.len() == MAX_QUOTAS {
                        return Err(de::Error::custom(super::QuotaError::TooManyQuotas(
                            MAX_QUOTAS + 1,
                        )));
                    }
                    quotas.push(q);
                }
                Quotas::new(quotas).map_err(de::Error::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Quotas, A::Error> {
                // One quota written as a table.
                Quota::deserialize(de::value::MapAccessDeserializer::new(map)).map(Quotas::from)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_strings_and_tables() {
        let q: Quota = serde_json::from_str(r#""100/min burst 10""#).expect("valid");
        assert_eq!(
            q,
            Quota::per_minute(100)
                .and_then(|q| q.with_burst(10))
                .expect("valid")
        );
        let t: Quota = serde_json::from_str(r#"{"limit": 100, "window": "1min", "burst": 10}"#)
            .expect("valid");
        assert_eq!(t, q);
        let secs: Quota =
            serde_json::from_str(r#"{"limit": 4, "window": 1, "name": "burst"}"#).expect("valid");
        assert_eq!(secs, Quota::per_second(4).expect("valid").named("burst"));
        let set: Quotas = serde_json::from_str(r#"["4/s name burst", "120/min"]"#).expect("valid");
        assert_eq!(set, Quotas::claid());
        let set: Quotas = serde_json::from_str(r#""4/s name burst, 120/min""#).expect("valid");
        assert_eq!(set, Quotas::claid());
        assert_eq!(
            serde_json::to_string(&set).expect("ser"),
            r#"["4/s name burst","120/min"]"#
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| {
            serde_json::from_str::<Quotas>(s)
                .expect_err("invalid")
                .to_string()
        };
        assert!(
            e(r#"["4/sec"]"#).contains(r#"unknown unit "sec""#),
            "{}",
            e(r#"["4/sec"]"#)
        );
        assert!(
            e(r#"["0/s"]"#).contains("at least 1 request"),
            "{}",
            e(r#"["0/s"]"#)
        );
        assert!(e("[]").contains("at least one quota"));
        assert!(e(r#"["1/s","1/s","1/s","1/s","1/s"]"#).contains("at most 4"));
        let t = e(r#"{"limit": 4, "window": "1sec"}"#);
        assert!(t.contains(r#"window "1sec": unknown unit "sec""#), "{t}");
        let t = e(r#"{"limit": 4, "window": -1}"#);
        assert!(t.contains("negative"), "{t}");
        let t = e(r#"{"limit": 4, "window": "1s", "brust": 2}"#);
        assert!(t.contains("brust"), "{t}");
    }
}
