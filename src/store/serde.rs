//! `serde` support (feature `serde`) for [`Tiers`]: a default set and named plans.
//!
//! ```toml
//! default = ["4/s name burst", "120/min"]
//!
//! [plans]
//! pro = ["40/s"]
//! enterprise = [{ limit = 400, window = "1s", burst = 800 }]
//! ```
//!
//! Plans get their handles in the order the deserializer yields them (file order for
//! JSON and YAML; the `toml` crate sorts keys unless its `preserve_order` feature is on),
//! so look them up by name with [`Tiers::tier`]. A plan named `default`, or a plan listed
//! twice, is an error.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_PLAN, Tiers};
use crate::quota::Quotas;

impl Serialize for Tiers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Plans<'a>(&'a Tiers);
        impl Serialize for Plans<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len() - 1))?;
                for (_, name, quotas) in self.0.plans().skip(1) {
                    map.serialize_entry(name, quotas)?;
                }
                map.end()
            }
        }
        let mut st = s.serialize_struct("Tiers", 2)?;
        st.serialize_field("default", self.default_set())?;
        st.serialize_field("plans", &Plans(self))?;
        st.end()
    }
}

/// The plans of a file, in the order the deserializer yields them.
struct Plans(Vec<(String, Quotas)>);

impl<'de> Deserialize<'de> for Plans {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Plans;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of plan names to quota lists")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plans, A::Error> {
                let mut plans: Vec<(String, Quotas)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == DEFAULT_PLAN {
                        return Err(de::Error::custom(
                            "plan \"default\": the default set is the top-level `default`",
                        ));
                    }
                    if plans.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format_args!("plan {name:?} given twice")));
                    }
                    let quotas = map
                        .next_value::<Quotas>()
                        .map_err(|e| de::Error::custom(format_args!("plan {name:?}: {e}")))?;
                    plans.push((name, quotas));
                }
                Ok(Plans(plans))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersFile {
    default: Quotas,
    #[serde(default)]
    plans: Option<Plans>,
}

impl<'de> Deserialize<'de> for Tiers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = TiersFile::deserialize(d)?;
        let mut tiers = Tiers::new(file.default);
        for (name, quotas) in file.plans.map_or_else(Vec::new, |p| p.0) {
            tiers = tiers.plan(name, quotas);
        }
        Ok(tiers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tier;

    const FILE: &str = r#"
default = ["4/s name burst", "120/min"]

[plans]
pro = ["40/s"]
enterprise = [{ limit = 400, window = "1s", burst = 800 }]
"#;

    #[test]
    fn reads_a_toml_file() {
        let tiers: Tiers = toml::from_str(FILE).expect("valid");
        assert_eq!(tiers.default_set(), &Quotas::claid());
        assert_eq!(tiers.len(), 3);
        let pro = tiers.tier("pro").expect("declared");
        let enterprise = tiers.tier("enterprise").expect("declared");
        assert_ne!(pro, Tier::DEFAULT);
        assert_eq!(
            tiers.get(pro).map(|q| q.to_string()),
            Some("40/s".to_owned())
        );
        assert_eq!(
            tiers.get(enterprise).map(|q| q.to_string()),
            Some("400/s burst 800".to_owned())
        );
        // JSON keeps the file's order.
        let json: Tiers =
            serde_json::from_str(r#"{"default": "1/s", "plans": {"b": "2/s", "a": "3/s"}}"#)
                .expect("valid");
        assert_eq!(
            (json.tier("b"), json.tier("a")),
            (Some(Tier(1)), Some(Tier(2)))
        );
        let back: Tiers = toml::from_str(&toml::to_string(&tiers).expect("ser")).expect("de");
        assert_eq!(back, tiers);
        let json: Tiers =
            serde_json::from_str(&serde_json::to_string(&tiers).expect("ser")).expect("de");
        assert_eq!(json, tiers);
    }

    #[test]
    fn bad_files_name_the_plan() {
        let e = |s: &str| toml::from_str::<Tiers>(s).expect_err("invalid").to_string();
        let bad = e("default = [\"4/s\"]\n[plans]\npro = [\"40/sec\"]\n");
        assert!(
            bad.contains(r#"plan "pro""#) && bad.contains(r#"unknown unit "sec""#),
            "{bad}"
        );
        assert!(e("default = [\"4/s\"]\n[plans]\ndefault = [\"1/s\"]\n").contains("top-level"));
        assert!(e("[plans]\npro = [\"1/s\"]\n").contains("default"));
        assert!(e("default = [\"4/s\"]\nplan = 1\n").contains("plan"));
    }
}
