//! Running cargo and reading its JSON.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The library the checks are about.
pub const LIBRARY: &str = "traced-llm";

/// The cargo that runs this task, so the checks use the same toolchain.
pub fn command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// The workspace root: this crate's parent directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Runs `command` and returns its standard output, or its standard error as the problem.
pub fn output(mut command: Command) -> Result<Vec<u8>, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|error| format!("could not run {shown}: {error}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `cargo metadata` for the locked workspace, with `features` as given to cargo.
pub fn metadata(features: &[&str]) -> Result<Value, String> {
    let mut command = command();
    command.args(["metadata", "--format-version", "1", "--locked"]);
    command.args(features);
    let stdout = output(command)?;
    serde_json::from_slice(&stdout).map_err(|error| format!("cargo metadata: {error}"))
}

/// The library's package entry in `metadata`.
pub fn library_package(metadata: &Value) -> Result<&Value, String> {
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == LIBRARY && package["source"].is_null())
        .ok_or_else(|| format!("cargo metadata lists no local package named {LIBRARY}"))
}
