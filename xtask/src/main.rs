//! Release checks that cargo does not make itself.
//!
//! - `cargo xtask msrv`: no dependency of the library declares a `rust-version` newer than the
//!   library's own, for every feature (features with a documented higher minimum are checked
//!   against that one instead).
//! - `cargo xtask external-types`: every other crate whose types appear in the library's public
//!   API is on an allow-list that says why, so a dependency's type never leaks in by accident.
//!
//! Both read what cargo and rustdoc report; neither needs a network nor a nightly toolchain.

mod cargo;
mod external_types;
mod msrv;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <msrv | external-types>";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let outcome = match task.as_deref() {
        Some("msrv") => msrv::check(),
        Some("external-types") => external_types::check(),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("{problem}");
            ExitCode::FAILURE
        }
    }
}
