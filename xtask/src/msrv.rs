//! The library's `rust-version` against every dependency's own.
//!
//! CI has one toolchain, so the declared minimum cannot be built with. What can be checked is
//! that nothing the library pulls in (normal and build dependencies, on every target) declares
//! that it needs a newer Rust, and clippy's `incompatible_msrv` lint covers the library's own use
//! of newer standard-library items.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::cargo;

/// Features whose dependencies need a newer Rust than the library, with that minimum. The
/// README says the same next to the feature.
const FEATURE_MINIMUMS: &[(&str, &str)] = &[
    // rig-core 0.40 depends on ordered-float 5.5, which declares 1.90.
    ("rig", "1.90"),
];

pub fn check() -> Result<String, String> {
    let plain = cargo::metadata(&["--no-deps"])?;
    let library = cargo::library_package(&plain)?;
    let declared = library["rust_version"]
        .as_str()
        .ok_or_else(|| format!("{} declares no rust-version", cargo::LIBRARY))?
        .to_owned();
    let features: Vec<&str> = library["features"]
        .as_object()
        .map(|features| features.keys().map(String::as_str).collect())
        .unwrap_or_default();

    let apart: BTreeSet<&str> = FEATURE_MINIMUMS.iter().map(|(name, _)| *name).collect();
    for name in &apart {
        if !features.contains(name) {
            return Err(format!(
                "xtask lists a minimum for feature `{name}`, which {} no longer has",
                cargo::LIBRARY
            ));
        }
    }

    let mut report = Vec::new();
    let core: Vec<&str> = features
        .iter()
        .copied()
        .filter(|feature| !apart.contains(feature))
        .collect();
    report.push(check_features(
        &format!("every feature but {}", join(&apart)),
        &core,
        &declared,
    )?);
    for (feature, minimum) in FEATURE_MINIMUMS {
        report.push(check_features(
            &format!("feature `{feature}` (with the defaults)"),
            &[feature],
            minimum,
        )?);
    }
    Ok(format!(
        "{} declares rust-version {declared}\n{}",
        cargo::LIBRARY,
        report.join("\n")
    ))
}

/// Checks the dependency graph with `features` on against `minimum`.
fn check_features(label: &str, features: &[&str], minimum: &str) -> Result<String, String> {
    let limit = parse_version(minimum)?;
    let selected = features.join(",");
    let metadata = cargo::metadata(&["--features", &selected])?;
    let needs = dependency_minimums(&metadata)?;
    let too_new: Vec<String> = needs
        .iter()
        .filter(|(_, version)| parse_version(version).is_ok_and(|needed| needed > limit))
        .map(|(package, version)| format!("  {package} needs Rust {version}"))
        .collect();
    let newest = needs
        .values()
        .filter_map(|version| parse_version(version).ok().map(|parsed| (parsed, version)))
        .max()
        .map_or("none declared", |(_, version)| version.as_str());
    if too_new.is_empty() {
        Ok(format!(
            "{label}: {} dependencies, the newest rust-version among them is {newest}, within {minimum}",
            needs.len()
        ))
    } else {
        Err(format!(
            "{label}: dependencies need a newer Rust than {minimum}:\n{}\n\
             Raise the minimum (Cargo.toml, README, xtask/src/msrv.rs) or hold the dependency back.",
            too_new.join("\n")
        ))
    }
}

/// Each package reachable from the library through normal and build edges, with the
/// `rust-version` it declares (packages that declare none are left out).
fn dependency_minimums(metadata: &Value) -> Result<BTreeMap<String, String>, String> {
    let library = cargo::library_package(metadata)?;
    let root = library["id"].as_str().unwrap_or_default();
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|package| Some((package["id"].as_str()?, package)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or("cargo metadata has no resolve graph")?
        .iter()
        .filter_map(|node| Some((node["id"].as_str()?, node)))
        .collect();

    let mut seen = BTreeSet::new();
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dependency in node["deps"].as_array().into_iter().flatten() {
            let used_by_users = dependency["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].is_null() || kind["kind"] == "build");
            if let (true, Some(package)) = (used_by_users, dependency["pkg"].as_str()) {
                pending.push(package);
            }
        }
    }

    Ok(seen
        .into_iter()
        .filter(|id| *id != root)
        .filter_map(|id| {
            let package = packages.get(id)?;
            let version = package["rust_version"].as_str()?;
            let name = format!(
                "{} {}",
                package["name"].as_str()?,
                package["version"].as_str()?
            );
            Some((name, version.to_owned()))
        })
        .collect())
}

/// `1.89`, `1.89.0` → `(1, 89, 0)`.
fn parse_version(text: &str) -> Result<(u64, u64, u64), String> {
    let mut parts = text.split('.').map(str::parse::<u64>);
    let mut next = || parts.next().transpose().map(Option::unwrap_or_default);
    let version = (next(), next(), next());
    match version {
        (Ok(major), Ok(minor), Ok(patch)) => Ok((major, minor, patch)),
        _ => Err(format!("`{text}` is not a Rust version")),
    }
}

fn join(names: &BTreeSet<&str>) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(parse_version("1.89"), Ok((1, 89, 0)));
        assert_eq!(parse_version("1.89.1"), Ok((1, 89, 1)));
        assert!(parse_version("1.90").unwrap() > parse_version("1.89.9").unwrap());
        assert!(parse_version("1.x").is_err());
    }
}
