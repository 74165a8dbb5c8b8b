//! The crate graph keeps one direction: `api → session → {kernel, cache}`. `api` reaches the
//! kernel only through `session`, and `kernel` and `cache` know nothing of the crates above
//! them. Read from `cargo metadata`, so a new dependency edge fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The workspace crates each workspace crate may depend on (normal, build or dev edges).
const ALLOWED: &[(&str, &[&str])] = &[
    ("mcpk-api", &["mcpk-session"]),
    ("mcpk-session", &["mcpk-kernel", "mcpk-cache"]),
    ("mcpk-kernel", &[]),
    ("mcpk-cache", &[]),
    // The integration tests drive everything.
    (
        "mcpk-tests",
        &["mcpk-api", "mcpk-session", "mcpk-kernel", "mcpk-cache"],
    ),
];

#[test]
fn dependencies_point_from_api_to_session_to_kernel_and_cache() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut broken = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(may) = allowed.get(name) else {
            broken.push(format!(
                "{name} is a workspace crate this test does not know"
            ));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let on = dependency["name"].as_str().unwrap_or_default();
            if members.contains(on) && !may.contains(&on) {
                broken.push(format!("{name} → {on}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency edges that break api → session → {{kernel, cache}}: {broken:?}"
    );
    assert!(members.contains("mcpk-api") && members.contains("mcpk-session"));
}
