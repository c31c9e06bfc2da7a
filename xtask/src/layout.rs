//! The package layout: the one place that names files inside the zip.
//!
//! The marketplace layout of a ThreatQ action zip is not publicly documented, so every file name
//! inside the zip comes from this table and nowhere else.

/// The zip's file name.
pub fn zip_name(version: &str) -> String {
    format!("sentinelone-action-bundle-{version}.zip")
}

/// The release binary.
pub const BINARY_ENTRY: &str = "bin/s1-actions";

/// Every `manifests/*.json` of the repository, copied byte for byte.
pub const MANIFEST_DIR: &str = "manifests";

/// Zip entry, and the key of `s1-actions spec`'s `schemas` it is written from.
pub const SCHEMA_ENTRIES: &[(&str, &str)] = &[
    ("schemas/envelope.schema.json", "envelope"),
    ("schemas/result.schema.json", "result"),
    ("schemas/manifest.schema.json", "manifest"),
];

/// Copied from the repository root.
pub const DOC_ENTRIES: &[&str] = &["README.md", "CHANGELOG.md", "LICENSE"];

/// `sha256sum` lines over every other entry.
pub const CHECKSUMS_ENTRY: &str = "checksums.sha256";

/// Unix mode of the binary.
pub const EXECUTABLE_MODE: u32 = 0o755;

/// Unix mode of every other entry, and of the zip itself.
pub const FILE_MODE: u32 = 0o644;

/// Deflate level of every entry.
pub const COMPRESS_LEVEL: i64 = 9;

/// In `manifests/`, next to the manifests it describes.
pub const MANIFEST_SCHEMA_FILE: &str = "manifest.schema.json";

/// 1980-01-01T00:00:00Z, the earliest time a zip entry can hold.
pub const DOS_EPOCH: i64 = 315_532_800;

/// A manifest file name: `*.json` but not `*.schema.json`.
pub fn is_manifest_file(name: &str) -> bool {
    name.len() > ".json".len() && name.ends_with(".json") && !name.ends_with(".schema.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_files_are_json_but_not_schemas() {
        assert!(is_manifest_file("sentinelone-list-sites.json"));
        assert!(!is_manifest_file("manifest.schema.json"));
        assert!(!is_manifest_file("notes.md"));
        assert!(!is_manifest_file(".json"));
    }
}
