//! `cargo xtask`: the project's own tooling. `package` builds the ThreatQ marketplace zip
//! (`./package.sh` calls it after `cargo build --release`), validates without writing, diffs the
//! manifests of two packages, and says where cargo put the release binary.
//!
//! Exit codes: 0 done; 1 validation failed (nothing written) or the zip could not be written;
//! 2 usage or unreadable input.

mod archive;
mod diff;
mod error;
mod layout;
#[cfg(test)]
mod testing;
mod text;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::layout::{DOS_EPOCH, MANIFEST_DIR};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tooling for s1-actions")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Marketplace packaging: validate, diff manifests, write a reproducible zip.
    Package {
        #[command(subcommand)]
        command: Package,
    },
}

#[derive(Subcommand)]
enum Package {
    /// Validate, print the manifest diff, write the zip.
    Build {
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// The s1-actions binary; default: the release build in cargo's target directory.
        #[arg(long)]
        binary: Option<PathBuf>,
        #[arg(long, default_value = "dist")]
        out_dir: PathBuf,
        /// Timestamp of every entry (seconds since 1970).
        #[arg(long, default_value_t = DOS_EPOCH, allow_negative_numbers = true)]
        epoch: i64,
        /// Older package zip or manifests directory to diff against.
        #[arg(long)]
        previous: Option<PathBuf>,
    },
    /// Validate only.
    Validate {
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// The s1-actions binary; default: the release build in cargo's target directory.
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Manifest changes from OLD to NEW (each a package zip, a manifests directory or a checkout).
    Diff { old: PathBuf, new: PathBuf },
    /// Print the path of the release binary (`<target directory>/release/s1-actions`).
    ReleaseBinary,
}

/// One line on stdout; a closed stdout (`| head`) is not an error worth a panic.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Top::Package { command } = cli.command;
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("package: {err}");
            err.exit_code()
        }
    }
}

fn run(command: Package) -> Result<(), Error> {
    match command {
        Package::Build {
            root,
            binary,
            out_dir,
            epoch,
            previous,
        } => build(
            &root,
            &binary_or_release(binary)?,
            &out_dir,
            epoch,
            previous.as_deref(),
        ),
        Package::Validate { root, binary } => {
            let checked = validate::validate(&root, &binary_or_release(binary)?)?;
            for warning in &checked.warnings {
                say(&format!("warning: {warning}"));
            }
            say(&valid_line(&checked));
            Ok(())
        }
        Package::Diff { old, new } => {
            let lines = diff::diff(&diff::load(&old)?, &diff::load(&new)?);
            if lines.is_empty() {
                say("no manifest changes");
            }
            lines.iter().for_each(|line| say(line));
            Ok(())
        }
        Package::ReleaseBinary => {
            say(&release_binary()?.display().to_string());
            Ok(())
        }
    }
}

fn valid_line(checked: &validate::Validated) -> String {
    format!(
        "valid: {} manifests match the {} actions of s1-actions {}",
        checked.files.len(),
        checked.actions,
        checked.version
    )
}

fn build(
    root: &Path,
    binary: &Path,
    out_dir: &Path,
    epoch: i64,
    previous: Option<&Path>,
) -> Result<(), Error> {
    let checked = validate::validate(root, binary)?;
    say(&valid_line(&checked));
    for warning in &checked.warnings {
        say(&format!("warning: {warning}"));
    }
    if let Some(previous) = previous {
        let current = diff::load(&root.join(MANIFEST_DIR))?;
        let lines = diff::diff(&diff::load(previous)?, &current);
        diff::report(previous, &lines)
            .iter()
            .for_each(|line| say(line));
    }
    let entries = archive::entries(root, binary, &checked.spec)?;
    let out = out_dir.join(layout::zip_name(&checked.version));
    let bytes = archive::write_zip(&out, &entries, epoch)?;
    let digest = archive::sha256_hex(&bytes);
    let zip_name = out
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sidecar = out.as_os_str().to_owned();
    sidecar.push(".sha256");
    std::fs::write(&sidecar, format!("{digest}  {zip_name}\n")).map_err(|err| {
        Error::Failed(format!(
            "cannot write {}: {err}",
            Path::new(&sidecar).display()
        ))
    })?;
    let stamp = archive::stamp_time(epoch).format("%Y-%m-%dT%H:%M:%SZ");
    say(&format!(
        "wrote {} ({} files, timestamps {stamp})",
        out.display(),
        entries.len()
    ));
    say(&format!("sha256 {digest}"));
    Ok(())
}

fn binary_or_release(binary: Option<PathBuf>) -> Result<PathBuf, Error> {
    binary.map_or_else(release_binary, Ok)
}

/// `<target directory>/release/s1-actions`, wherever cargo puts it (`CARGO_TARGET_DIR`,
/// `build.target-dir`, or `target/`), as `cargo metadata` says.
fn release_binary() -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let failed =
        |why: String| Error::Failed(format!("cannot find cargo's target directory: {why}"));
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .map_err(|err| failed(err.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|err| failed(err.to_string()))?;
    let target = metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| failed("no target_directory in `cargo metadata`".to_string()))?;
    Ok(Path::new(target).join("release").join("s1-actions"))
}
