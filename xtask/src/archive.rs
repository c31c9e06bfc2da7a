//! The zip: what goes in (from the layout table) and how it is written so that two builds of
//! one commit are byte-identical — sorted entries, one timestamp, fixed Unix permissions,
//! deflate level 9 through zlib, no extra fields, no comments, no data descriptors.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::Error;
use crate::layout::{
    BINARY_ENTRY, CHECKSUMS_ENTRY, COMPRESS_LEVEL, DOC_ENTRIES, DOS_EPOCH, EXECUTABLE_MODE,
    FILE_MODE, MANIFEST_DIR, SCHEMA_ENTRIES,
};
use crate::validate::json_files;

/// Zip entry name -> (contents, Unix mode); sorted by name.
pub type Entries = BTreeMap<String, (Vec<u8>, u32)>;

/// Lower-case hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A schema as written in the zip: two-space indented JSON and a newline.
fn schema_text(schema: &Value) -> Result<Vec<u8>, Error> {
    let mut text = serde_json::to_vec_pretty(schema)
        .map_err(|err| Error::Failed(format!("cannot write a schema: {err}")))?;
    text.push(b'\n');
    Ok(text)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|err| Error::Failed(format!("cannot read {}: {err}", path.display())))
}

/// Every entry of the package: the layout table filled from `root`, the binary and its spec.
pub fn entries(root: &Path, binary: &Path, spec: &Value) -> Result<Entries, Error> {
    let mut entries = Entries::new();
    entries.insert(BINARY_ENTRY.to_string(), (read(binary)?, EXECUTABLE_MODE));
    for path in json_files(&root.join(MANIFEST_DIR), |_| true).map_err(Error::Failed)? {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.insert(format!("{MANIFEST_DIR}/{name}"), (read(&path)?, FILE_MODE));
    }
    for (entry, key) in SCHEMA_ENTRIES {
        let schema = spec
            .get("schemas")
            .and_then(|schemas| schemas.get(key))
            .ok_or_else(|| Error::Failed(format!("the spec has no schemas.{key}")))?;
        entries.insert(entry.to_string(), (schema_text(schema)?, FILE_MODE));
    }
    for doc in DOC_ENTRIES {
        entries.insert(doc.to_string(), (read(&root.join(doc))?, FILE_MODE));
    }
    let checksums: String = entries
        .iter()
        .map(|(name, (data, _))| format!("{}  {name}\n", sha256_hex(data)))
        .collect();
    entries.insert(
        CHECKSUMS_ENTRY.to_string(),
        (checksums.into_bytes(), FILE_MODE),
    );
    Ok(entries)
}

/// The UTC time of `epoch`, no earlier than 1980-01-01 (what `build` prints).
pub fn stamp_time(epoch: i64) -> DateTime<Utc> {
    let floor = DateTime::from_timestamp(DOS_EPOCH, 0).unwrap_or_default();
    DateTime::from_timestamp(epoch.max(DOS_EPOCH), 0).unwrap_or(floor)
}

/// The entries' timestamp: `epoch` in UTC, 1980-01-01 when outside what a zip can hold
/// (before 1980 or after 2107), seconds rounded down to even (DOS time has 2 s steps).
pub fn dos_time(epoch: i64) -> zip::DateTime {
    let from = |t: DateTime<Utc>| {
        let year = u16::try_from(t.year()).ok()?;
        let narrow = |n: u32| u8::try_from(n).ok();
        zip::DateTime::from_date_and_time(
            year,
            narrow(t.month())?,
            narrow(t.day())?,
            narrow(t.hour())?,
            narrow(t.minute())?,
            narrow(t.second() - t.second() % 2)?,
        )
        .ok()
    };
    let t = stamp_time(epoch);
    (if t.year() > 2107 { None } else { from(t) }).unwrap_or_default()
}

/// The zip's bytes: sorted entries, one fixed timestamp, fixed Unix permissions, no extras.
pub fn zip_bytes(entries: &Entries, epoch: i64) -> Result<Vec<u8>, Error> {
    let failed =
        |err: &dyn std::fmt::Display| Error::Failed(format!("cannot write the zip: {err}"));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(COMPRESS_LEVEL))
        .last_modified_time(dos_time(epoch));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, (data, mode)) in entries {
        zip.start_file(name.as_str(), options.unix_permissions(*mode))
            .map_err(|err| failed(&err))?;
        zip.write_all(data).map_err(|err| failed(&err))?;
    }
    Ok(zip.finish().map_err(|err| failed(&err))?.into_inner())
}

/// Writes the zip to `path` (through a temporary file, mode 0644) and returns its bytes.
pub fn write_zip(path: &Path, entries: &Entries, epoch: i64) -> Result<Vec<u8>, Error> {
    let bytes = zip_bytes(entries, epoch)?;
    let failed =
        |err: std::io::Error| Error::Failed(format!("cannot write {}: {err}", path.display()));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(failed)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    fs::write(tmp, &bytes).map_err(failed)?;
    set_file_mode(tmp).map_err(failed)?;
    fs::rename(tmp, path).map_err(failed)?;
    Ok(bytes)
}

#[cfg(unix)]
fn set_file_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
}

#[cfg(not(unix))]
fn set_file_mode(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::testing::{scratch_root, spec};

    fn text(lines: u64) -> Vec<u8> {
        (0..lines)
            .map(|i| {
                format!(
                    "line {i}: {} {}\n",
                    i * i % 97,
                    "abc".repeat((i % 7) as usize)
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 12345;
        (0..len)
            .map(|i| {
                x = (x * 1_103_515_245 + 12_345) % (1 << 31);
                if i % 3 == 0 {
                    (i % 251) as u8
                } else {
                    ((x >> 16) & 0xff) as u8
                }
            })
            .collect()
    }

    /// Text, incompressible-ish bytes, a tiny file and an empty one.
    fn sample() -> Entries {
        Entries::from([
            ("README.md".to_string(), (text(2000), 0o644)),
            ("bin/tool".to_string(), (noise(50_000), 0o755)),
            (
                "manifests/a.json".to_string(),
                (b"{\"name\": \"a\"}\n".to_vec(), 0o644),
            ),
            ("empty".to_string(), (Vec::new(), 0o644)),
        ])
    }

    /// The sha256 CPython's zipfile (zlib 1.2.13, level 9) gave for `sample()` at epoch
    /// 1700000001 with the write_zip of packaging/package.py, the tool this one replaced. A
    /// different deflate backend (miniz_oxide, zlib-rs) or any header difference changes it.
    const PYTHON_ZIPFILE_SHA256: &str =
        "fd3eae2be8a2fa9a68a8c2f10df410fe814e4671e6a22292e10e3185206db94a";

    #[test]
    fn bytes_are_those_of_python_zipfile_with_zlib() {
        assert_eq!(
            sha256_hex(&zip_bytes(&sample(), 1_700_000_001).expect("zip")),
            PYTHON_ZIPFILE_SHA256
        );
    }

    #[test]
    fn two_builds_are_identical() {
        assert_eq!(
            zip_bytes(&sample(), 1_700_000_001).expect("one"),
            zip_bytes(&sample(), 1_700_000_001).expect("two")
        );
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// Walks the central directory by hand: what unzip and ThreatQ see, field by field.
    #[test]
    fn headers_are_sorted_unix_deflated_timestamped_and_bare() {
        let entries = sample();
        let bytes = zip_bytes(&entries, 1_700_000_001).expect("zip");
        let end = bytes.len() - 22;
        assert_eq!(
            u32_at(&bytes, end),
            0x0605_4b50,
            "end of central directory, no archive comment"
        );
        assert_eq!(u16_at(&bytes, end + 20), 0, "archive comment length");
        let count = usize::from(u16_at(&bytes, end + 10));
        let mut at = u32_at(&bytes, end + 16) as usize;
        let stamp = dos_time(1_700_000_001);
        let mut names = Vec::new();
        for _ in 0..count {
            assert_eq!(u32_at(&bytes, at), 0x0201_4b50);
            let name_len = usize::from(u16_at(&bytes, at + 28));
            let name =
                String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).expect("name");
            let (_, mode) = entries[&name];
            assert_eq!(
                u16_at(&bytes, at + 4),
                0x0314,
                "{name}: made by Unix, zip 2.0"
            );
            assert_eq!(u16_at(&bytes, at + 6), 20, "{name}: needs zip 2.0");
            assert_eq!(
                u16_at(&bytes, at + 8),
                0,
                "{name}: flags (no data descriptor)"
            );
            assert_eq!(u16_at(&bytes, at + 10), 8, "{name}: deflated");
            assert_eq!(u16_at(&bytes, at + 12), stamp.timepart(), "{name}: time");
            assert_eq!(u16_at(&bytes, at + 14), stamp.datepart(), "{name}: date");
            assert_eq!(u16_at(&bytes, at + 30), 0, "{name}: extra field");
            assert_eq!(u16_at(&bytes, at + 32), 0, "{name}: comment");
            assert_eq!(
                u32_at(&bytes, at + 38),
                (0o100_000 | mode) << 16,
                "{name}: regular file, mode"
            );
            let local = u32_at(&bytes, at + 42) as usize;
            assert_eq!(u32_at(&bytes, local), 0x0403_4b50);
            assert_eq!(u16_at(&bytes, local + 6), 0, "{name}: local flags");
            assert_eq!(u16_at(&bytes, local + 28), 0, "{name}: local extra field");
            names.push(name);
            at += 46 + name_len;
        }
        assert_eq!(
            names,
            entries.keys().cloned().collect::<Vec<_>>(),
            "sorted, all of them"
        );

        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("readable");
        for (name, (data, _)) in &entries {
            let mut read = Vec::new();
            archive
                .by_name(name)
                .expect(name)
                .read_to_end(&mut read)
                .expect("inflate");
            assert_eq!(&read, data, "{name}");
        }
    }

    #[test]
    fn timestamps_hold_what_dos_time_can() {
        let show = |t: zip::DateTime| {
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
        };
        assert_eq!(show(dos_time(0)), (1980, 1, 1, 0, 0, 0), "before 1980");
        assert_eq!(show(dos_time(-5)), (1980, 1, 1, 0, 0, 0));
        assert_eq!(
            show(dos_time(1_700_000_001)),
            (2023, 11, 14, 22, 13, 20),
            "odd second rounded down"
        );
        assert_eq!(show(dos_time(4_354_819_200)), (1980, 1, 1, 0, 0, 0), "2108");
        assert_eq!(show(dos_time(i64::MAX)), (1980, 1, 1, 0, 0, 0));
        assert_eq!(
            stamp_time(0).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "1980-01-01T00:00:00Z"
        );
    }

    #[test]
    fn entries_follow_the_layout_and_the_checksums_cover_them() {
        let root = scratch_root();
        let binary = root.path().join("s1-actions");
        fs::write(&binary, b"\x7fELF binary").expect("write");
        let entries = entries(root.path(), &binary, &spec()).expect("entries");
        assert_eq!(
            entries[BINARY_ENTRY],
            (b"\x7fELF binary".to_vec(), EXECUTABLE_MODE)
        );
        for (entry, _) in SCHEMA_ENTRIES {
            let (text, mode) = &entries[*entry];
            assert_eq!(*mode, FILE_MODE);
            assert!(
                text.starts_with(b"{\n  \"") && text.ends_with(b"}\n"),
                "{entry}: indented JSON"
            );
        }
        assert!(entries.contains_key("manifests/manifest.schema.json"));
        assert!(
            entries
                .keys()
                .all(|name| entries[name].1 == FILE_MODE || name == BINARY_ENTRY)
        );
        let checksums = String::from_utf8(entries[CHECKSUMS_ENTRY].0.clone()).expect("ascii");
        let listed: Vec<&str> = checksums.lines().collect();
        let others: Vec<&String> = entries
            .keys()
            .filter(|name| *name != CHECKSUMS_ENTRY)
            .collect();
        assert_eq!(listed.len(), others.len());
        for (line, name) in listed.iter().zip(others) {
            assert_eq!(*line, format!("{}  {name}", sha256_hex(&entries[name].0)));
        }
    }

    #[test]
    fn the_written_zip_is_0644_and_matches_its_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out/pkg.zip");
        let bytes = write_zip(&path, &sample(), 0).expect("write");
        assert_eq!(fs::read(&path).expect("read"), bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
                FILE_MODE
            );
        }
        assert!(!dir.path().join("out/pkg.zip.tmp").exists());
    }
}
