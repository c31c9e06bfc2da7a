//! Test helpers: a scratch copy of the files the packer reads, and manifest doctoring.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root (the xtask lives in `xtask/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A temporary copy of `manifests/`, `examples/` and the documents.
pub fn scratch_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["manifests", "examples"] {
        fs::create_dir(dir.path().join(sub)).expect("mkdir");
        for entry in fs::read_dir(repo().join(sub)).expect("read_dir") {
            let path = entry.expect("entry").path();
            fs::copy(
                &path,
                dir.path().join(sub).join(path.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    for doc in crate::layout::DOC_ENTRIES {
        fs::copy(repo().join(doc), dir.path().join(doc)).expect("copy doc");
    }
    dir
}

/// The spec this source tree's binary prints.
pub fn spec() -> Value {
    s1_actions::spec::document(None).expect("spec")
}

/// Rewrites a JSON file through `edit`.
pub fn doctor(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value =
        serde_json::from_str(&fs::read_to_string(path).expect("read")).expect("json");
    edit(&mut value);
    fs::write(path, serde_json::to_string_pretty(&value).expect("json")).expect("write");
}

/// The parameter called `name` of a manifest value.
pub fn param<'a>(manifest: &'a mut Value, name: &str) -> &'a mut Value {
    manifest["params"]
        .as_array_mut()
        .expect("params")
        .iter_mut()
        .find(|p| p["name"] == name)
        .expect("param")
}
