//! Other crates' types in the library's public API, against an allow-list.
//!
//! A type from a dependency in a public signature ties the library's semver to that
//! dependency's: a major bump there is a breaking change here. Some are chosen (serde's traits,
//! OpenTelemetry's providers behind `otel`); the rest must not appear by accident. rustdoc's JSON
//! output lists every public item and the paths its signatures name; it is unstable, so
//! `RUSTC_BOOTSTRAP=1` lets the stable toolchain write it, and this check reads only the parts
//! of the format that have stayed put (`index`, `paths`, `external_crates`, `crate_id`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::cargo;

/// Always allowed, and left out of the summary.
const STANDARD_LIBRARY: [&str; 3] = ["std", "core", "alloc"];

/// The crates whose types may appear in the public API, and why.
const ALLOWED: &[(&str, &str)] = &[
    ("std", "the standard library"),
    ("core", "the standard library"),
    ("alloc", "the standard library"),
    (
        "async_trait",
        "re-exported, so an `LlmModel` or `FlagSource` is written without depending on it",
    ),
    (
        "futures_core",
        "`Stream`: chat streams, text streams and traced streams are streams",
    ),
    (
        "serde_core",
        "serde's `Serialize`/`Deserialize` (serde re-exports them from serde_core): events, \
         prices, rules and snapshots (de)serialize, properties take any `Serialize`",
    ),
    (
        "serde_json",
        "`Value` and `Map`: custom properties, groups, tool arguments and provider metadata are JSON",
    ),
    ("uuid", "`Uuid`: event, exception and alert ids are UUIDv7s, as PostHog keys them"),
    (
        "opentelemetry",
        "feature `otel`: the sink exports through the user's own tracer and meter providers",
    ),
    (
        "async_openai",
        "feature `async-openai`: the adapter takes and returns async-openai's own types",
    ),
    (
        "rig_core",
        "feature `rig`: the adapter is a rig `CompletionModel` over one",
    ),
    (
        "opentelemetry_sdk",
        "feature `otel`: `TracedIdGenerator` is an SDK `IdGenerator`, so span ids match PostHog's",
    ),
];

pub fn check() -> Result<String, String> {
    let documentation = build_json()?;
    let crate_ = read(&documentation)?;
    let found = Walk::new(&crate_)?.run();

    let allowed: BTreeMap<&str, &str> = ALLOWED.iter().copied().collect();
    let mut unexpected = Vec::new();
    for (name, places) in &found {
        if !allowed.contains_key(name.as_str()) {
            let shown: Vec<&str> = places.iter().take(5).map(String::as_str).collect();
            let more = places.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            unexpected.push(format!("  {name}: in {}{more}", shown.join(", ")));
        }
    }
    let unused: Vec<&str> = allowed
        .keys()
        .copied()
        .filter(|name| !STANDARD_LIBRARY.contains(name))
        .filter(|name| !found.contains_key(*name))
        .collect();

    if !unexpected.is_empty() {
        return Err(format!(
            "types of crates that are not on the allow-list (xtask/src/external_types.rs) appear \
             in the public API of {}:\n{}\nMake them private, or allow the crate and say why.",
            cargo::LIBRARY,
            unexpected.join("\n")
        ));
    }
    if !unused.is_empty() {
        return Err(format!(
            "the allow-list names crates that no longer appear in the public API: {}; remove them",
            unused.join(", ")
        ));
    }
    let listed: Vec<String> = found
        .iter()
        .filter(|(name, _)| !STANDARD_LIBRARY.contains(&name.as_str()))
        .map(|(name, places)| match places.len() {
            1 => format!("  {name} (1 item)"),
            count => format!("  {name} ({count} items)"),
        })
        .collect();
    Ok(format!(
        "the public API of {} (every feature) names types of the standard library and of:\n{}",
        cargo::LIBRARY,
        listed.join("\n")
    ))
}

/// Writes the library's rustdoc JSON with every feature on, and returns its path.
fn build_json() -> Result<PathBuf, String> {
    let metadata = cargo::metadata(&["--no-deps"])?;
    let target = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("cargo metadata names no target directory")?;
    let mut command = cargo::command();
    command
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "rustdoc",
            "--lib",
            "--locked",
            "--all-features",
            "--package",
        ])
        .arg(cargo::LIBRARY)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"]);
    cargo::output(command)?;
    Ok(target
        .join("doc")
        .join(format!("{}.json", cargo::LIBRARY.replace('-', "_"))))
}

fn read(path: &PathBuf) -> Result<Value, String> {
    let bytes = std::fs::read(path)
        .map_err(|error| format!("could not read {}: {error}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|error| format!("{}: {error}", path.display()))
}

/// A walk over what a user of the crate can reach: public items from the crate root down,
/// through re-exports, fields, variants, methods and trait implementations.
struct Walk<'a> {
    index: &'a serde_json::Map<String, Value>,
    paths: &'a serde_json::Map<String, Value>,
    crates: &'a serde_json::Map<String, Value>,
    pending: Vec<(String, String)>,
    visited: BTreeSet<String>,
    /// External crate name → the public items that name its types.
    found: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Walk<'a> {
    fn new(crate_: &'a Value) -> Result<Self, String> {
        let section = |name: &str| {
            crate_[name]
                .as_object()
                .ok_or_else(|| format!("rustdoc JSON has no `{name}`"))
        };
        let root = id_key(&crate_["root"]).ok_or("rustdoc JSON has no root")?;
        Ok(Self {
            index: section("index")?,
            paths: section("paths")?,
            crates: section("external_crates")?,
            pending: vec![(root, cargo::LIBRARY.replace('-', "_"))],
            visited: BTreeSet::new(),
            found: BTreeMap::new(),
        })
    }

    fn run(mut self) -> BTreeMap<String, BTreeSet<String>> {
        while let Some((id, place)) = self.pending.pop() {
            if self.visited.insert(id.clone()) {
                self.visit(&id, &place);
            }
        }
        self.found
    }

    fn visit(&mut self, id: &str, place: &str) {
        let Some(item) = self.index.get(id) else {
            // An item of another crate, re-exported as it is.
            self.note_external(id, place);
            return;
        };
        let place = self
            .local_path(id)
            .unwrap_or_else(|| match item["name"].as_str() {
                Some(name) => format!("{place}::{name}"),
                None => place.to_owned(),
            });
        let inner = &item["inner"];
        let Some((kind, body)) = inner.as_object().and_then(|kinds| kinds.iter().next()) else {
            return;
        };
        match kind.as_str() {
            "module" => self.follow_public(&body["items"], &place),
            "use" => {
                if let Some(target) = id_key(&body["id"]) {
                    if body["is_glob"] == true {
                        if let Some(module) = self.index.get(&target) {
                            self.follow_public(&module["inner"]["module"]["items"], &place);
                        }
                    } else {
                        self.pending.push((target, place.clone()));
                    }
                }
            }
            "struct" | "union" => {
                self.scan(body, &place);
                let fields = &body["kind"];
                for list in [
                    &fields["plain"]["fields"],
                    &fields["tuple"],
                    &body["fields"],
                ] {
                    self.follow_public(list, &place);
                }
                self.follow_all(&body["impls"], &place);
            }
            "enum" => {
                self.scan(&body["generics"], &place);
                self.follow_all(&body["variants"], &place);
                self.follow_all(&body["impls"], &place);
            }
            "variant" => {
                let fields = &body["kind"];
                for list in [&fields["tuple"], &fields["struct"]["fields"]] {
                    self.follow_all(list, &place);
                }
            }
            "trait" => {
                self.scan(&body["generics"], &place);
                self.scan(&body["bounds"], &place);
                self.follow_all(&body["items"], &place);
                self.follow_all(&body["implementations"], &place);
            }
            "impl" => {
                // Auto-trait and blanket impls come from the trait's crate, not from this API.
                if body["is_synthetic"] == true || !body["blanket_impl"].is_null() {
                    return;
                }
                self.scan(&body["trait"], &place);
                self.scan(&body["for"], &place);
                self.scan(&body["generics"], &place);
                if body["trait"].is_null() {
                    self.follow_public(&body["items"], &place);
                } else {
                    self.follow_all(&body["items"], &place);
                }
            }
            "macro" | "proc_macro" | "primitive" | "extern_crate" => {}
            _ => self.scan(body, &place),
        }
    }

    /// Notes every other crate's path named anywhere in `value`.
    fn scan(&mut self, value: &Value, place: &str) {
        match value {
            Value::Object(object) => {
                if let (Some(_), Some(id)) = (object.get("path"), object.get("id").and_then(id_key))
                {
                    self.note_external(&id, place);
                }
                for nested in object.values() {
                    self.scan(nested, place);
                }
            }
            Value::Array(values) => {
                for nested in values {
                    self.scan(nested, place);
                }
            }
            _ => {}
        }
    }

    fn note_external(&mut self, id: &str, place: &str) {
        let Some(summary) = self.paths.get(id) else {
            return;
        };
        let Some(crate_id) = id_key(&summary["crate_id"]) else {
            return;
        };
        if crate_id == "0" {
            return;
        }
        let name = self.crates[&crate_id]["name"]
            .as_str()
            .unwrap_or("an unnamed crate")
            .to_owned();
        let parts: Vec<&str> = summary["path"]
            .as_array()
            .map(|parts| parts.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // A macro's private support (`pin_project_lite::__private::*`) is nobody's API.
        if parts.iter().any(|part| part.starts_with("__")) {
            return;
        }
        let path = parts.join("::");
        self.found
            .entry(name)
            .or_default()
            .insert(format!("{place} ({path})"));
    }

    fn follow_public(&mut self, ids: &Value, place: &str) {
        for id in ids.as_array().into_iter().flatten().filter_map(id_key) {
            let public = self
                .index
                .get(&id)
                .is_none_or(|item| item["visibility"] == "public");
            if public {
                self.pending.push((id, place.to_owned()));
            }
        }
    }

    fn follow_all(&mut self, ids: &Value, place: &str) {
        for id in ids.as_array().into_iter().flatten().filter_map(id_key) {
            self.pending.push((id, place.to_owned()));
        }
    }

    /// `traced_llm::module::Item` for items rustdoc gives a path to.
    fn local_path(&self, id: &str) -> Option<String> {
        let summary = self.paths.get(id)?;
        if id_key(&summary["crate_id"])? != "0" {
            return None;
        }
        let parts: Vec<&str> = summary["path"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Some(parts.join("::"))
    }
}

/// Ids are numbers in recent formats and strings in older ones; both become the map key.
fn id_key(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}
