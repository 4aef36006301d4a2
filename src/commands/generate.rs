use std::process::ExitCode;

use crate::generate::{self, GenerateArgs};

/// Writes the files and prints the summary as JSON (tests and demos read it).
pub fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let summary = generate::generate(args)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}
