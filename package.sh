#!/usr/bin/env bash
# Builds the ThreatQ marketplace package: dist/sentinelone-action-bundle-<version>.zip.
#
#   ./package.sh [--previous OLD.zip|DIR] [--out-dir DIR]
#
# 1. cargo build --release --locked
# 2. `s1-actions spec`, and every manifests/*.json checked against it (refuses on any problem)
# 3. with --previous: the manifest changes since that package (what ThreatQ administrators see)
# 4. the zip: entries sorted, one timestamp, fixed permissions, deflate level 9, checksums.sha256
#
# Two runs of one commit give byte-identical zips. Entry timestamps come from SOURCE_DATE_EPOCH,
# else the commit time of HEAD, else 1980-01-01. Needs: the Rust toolchain (and a C compiler, for
# zlib), git (optional). Details: docs/packaging.md; the file layout is the table in xtask/src/layout.rs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

usage() {
    sed -n '2,13p' "$here/package.sh" | sed 's/^# \{0,1\}//'
}
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

previous=""
out_dir="$here/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --previous) [ $# -ge 2 ] || { echo "package.sh: --previous needs a path" >&2; exit 2; }
                    previous="$2"; shift 2 ;;
        --previous=*) previous="${1#*=}"; shift ;;
        --out-dir) [ $# -ge 2 ] || { echo "package.sh: --out-dir needs a path" >&2; exit 2; }
                   out_dir="$2"; shift 2 ;;
        --out-dir=*) out_dir="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "package.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v cargo >/dev/null || { echo "package.sh: cargo is required" >&2; exit 2; }
if [ -n "$previous" ]; then
    [ -e "$previous" ] || { echo "package.sh: --previous $previous: no such file or directory" >&2; exit 2; }
    previous="$(absolute "$previous")"
fi
out_dir="$(absolute "$out_dir")"
cd "$here"

echo "== cargo build --release --locked" >&2
cargo build --release --locked

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    epoch="$SOURCE_DATE_EPOCH"
elif epoch="$(git log -1 --format=%ct HEAD 2>/dev/null)" && [ -n "$epoch" ]; then
    :
else
    epoch=315532800 # 1980-01-01T00:00:00Z
fi

echo "== validate manifests and write the package (cargo xtask package build)" >&2
# The xtask finds the release binary wherever cargo put it (CARGO_TARGET_DIR, build.target-dir).
exec cargo run --quiet --locked --package xtask -- package build --root . --out-dir "$out_dir" \
    --epoch "$epoch" ${previous:+--previous "$previous"}
