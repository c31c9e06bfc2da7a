#!/usr/bin/env bash
# Packaging test (run by .ci/run): `./package.sh` twice gives the same sha256; the zip's listing,
# permissions, timestamps and checksums; the packaged binary answers like the development build;
# validation refuses broken manifests; the manifest diff reports doctored manifests. The xtask's
# own tests (`cargo test -p xtask`) cover validation and the diff case by case, and the zip format
# against the bytes CPython's zipfile wrote. Needs no Python: bash, coreutils, sed, grep, unzip.
#
#   packaging/test.sh
#
# Uses the release build of the current checkout (CARGO_TARGET_DIR is honoured). Writes only to
# a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@" >"$tmp/check.out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$tmp/check.out"; fi
}
xtask() { cargo run --quiet --locked --package xtask -- package "$@"; }

# --- 1. Two builds, one sha256 ---------------------------------------------------------------
echo "== package twice"
./package.sh --out-dir "$tmp/one" >"$tmp/one.log"
first_zip="$(ls "$tmp"/one/sentinelone-action-bundle-*.zip)"
./package.sh --out-dir "$tmp/two" --previous "$first_zip" >"$tmp/two.log"
second_zip="$(ls "$tmp"/two/sentinelone-action-bundle-*.zip)"
sha_one="$(sha256sum "$first_zip" | cut -d' ' -f1)"
sha_two="$(sha256sum "$second_zip" | cut -d' ' -f1)"
echo "     first  $sha_one  $(basename "$first_zip")"
echo "     second $sha_two  $(basename "$second_zip")"
check "two packages of one commit are byte-identical" test "$sha_one" = "$sha_two"
check "the .sha256 file next to the zip verifies" sh -c "cd '$tmp/one' && sha256sum -c --quiet ./*.zip.sha256"
check "package.sh prints the zip's sha256" grep -qx "sha256 $sha_one" "$tmp/one.log"
check "--previous the same package: no manifest changes" grep -q "none: existing configurations carry over unchanged" "$tmp/two.log"

# --- 2. The listing ---------------------------------------------------------------------------
echo "== listing"
{
    echo bin/s1-actions
    echo CHANGELOG.md
    echo LICENSE
    echo README.md
    echo checksums.sha256
    for f in manifests/*.json; do echo "$f"; done
    echo schemas/envelope.schema.json
    echo schemas/manifest.schema.json
    echo schemas/result.schema.json
} | sort >"$tmp/expected.list"
entries="$(wc -l <"$tmp/expected.list")"
unzip -Z1 "$first_zip" >"$tmp/actual.list"
check "entries are exactly the expected files" diff "$tmp/expected.list" "$tmp/actual.list"
check "entries are stored in sorted order" sh -c "sort -c '$tmp/actual.list'"
# zipinfo columns: permissions, version, system, size, type, method, date, time, name
unzip -Z "$first_zip" | awk '$1 ~ /^[-dl][-r]/ && NF == 9' >"$tmp/zipinfo"
check "zipinfo lists every entry" test "$(wc -l <"$tmp/zipinfo")" -eq "$entries"
check "binary is -rwxr-xr-x, every other file -rw-r--r--, made on Unix" awk '
    $9 == "bin/s1-actions" { if ($1 != "-rwxr-xr-x") bad = 1; next }
    { if ($1 != "-rw-r--r--") bad = 1 }
    $3 != "unx" { bad = 1 }
    END { exit bad }' "$tmp/zipinfo"
check "every entry is deflated" awk '$6 != "defX" && $6 != "defN" { bad = 1 } END { exit bad }' "$tmp/zipinfo"
check "every entry has the same timestamp" test "$(awk '{ print $7, $8 }' "$tmp/zipinfo" | sort -u | wc -l)" -eq 1
unzip -Zv "$first_zip" >"$tmp/zipinfo-v"
count() { grep -c -- "$1" "$tmp/zipinfo-v" || true; }
check "no extra fields" test "$(count 'length of extra field: *0 bytes')" -eq "$entries"
check "no data descriptors" test "$(count 'extended local header: *no')" -eq "$entries"
check "no entry comments" test "$(count 'There is no file comment.')" -eq "$entries"
check "no zip comment" grep -qx 'There is no zipfile comment.' "$tmp/zipinfo-v"

# --- 3. Unpacked: checksums, and the packaged binary answers like the development build ------
echo "== unpacked package"
mkdir "$tmp/unpacked"
unzip -q "$first_zip" -d "$tmp/unpacked"
check "checksums.sha256 verifies every file" sh -c "cd '$tmp/unpacked' && sha256sum -c --quiet checksums.sha256"
check "checksums.sha256 covers every other file" bash -c "
    cd '$tmp/unpacked' && diff <(find . -type f ! -name checksums.sha256 | sed 's|^\./||' | sort) \
        <(awk '{ print \$2 }' checksums.sha256 | sort)"
check "binary is executable after unzip" test -x "$tmp/unpacked/bin/s1-actions"
for f in manifests/*.json README.md CHANGELOG.md LICENSE; do
    check "$f is the repository's file" cmp "$f" "$tmp/unpacked/$f"
done

check "packaged binary is the release build" cmp "$(xtask release-binary)" "$tmp/unpacked/bin/s1-actions"

# Results without the one volatile field, metrics.duration_ms (results are one line of JSON).
normalise() { sed -E 's/,?"duration_ms":[0-9]+//g'; }
same_result() { # same_result COMMAND... (envelope on stdin of both)
    local envelope="$1"; shift
    local packaged_exit=0 dev_exit=0
    "$tmp/unpacked/bin/s1-actions" "$@" <"$envelope" >"$tmp/packaged.json" 2>/dev/null || packaged_exit=$?
    cargo run --release --locked -q -- "$@" <"$envelope" >"$tmp/dev.json" 2>/dev/null || dev_exit=$?
    [ "$packaged_exit" = "$dev_exit" ] || { echo "exit $packaged_exit (packaged) != $dev_exit (cargo run)"; return 1; }
    [ -s "$tmp/dev.json" ] || { echo "no output"; return 1; }
    diff <(normalise <"$tmp/packaged.json") <(normalise <"$tmp/dev.json")
}
for example in examples/*.json; do
    check "$example: packaged validate == cargo run --release -- validate" same_result "$example" validate
done
check "packaged spec == cargo run --release -- spec" same_result /dev/null spec

# Dry runs against the packaged binary's own simulator (read-only look-ups, so both runs see one
# console state). Port 0: the simulator picks a free port and logs its base URL.
"$tmp/unpacked/bin/s1-actions" simulate --port 0 >"$tmp/simulator.log" 2>&1 &
simulator=$!
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$tmp"' EXIT
base_url=""
for _ in $(seq 100); do
    base_url="$(grep -o '"base_url":"http://127\.0\.0\.1:[0-9]*"' "$tmp/simulator.log" | head -1 | cut -d'"' -f4 || true)"
    [ -n "$base_url" ] && break
    sleep 0.1
done
[ -n "$base_url" ] || { echo "simulator did not start"; sed 's/^/     /' "$tmp/simulator.log"; exit 1; }
for example in examples/*.json; do
    # Each example has one "hostname" and one "api_token", both in its config.
    sed -E -e "s|\"hostname\": \"[^\"]*\"|\"hostname\": \"$base_url\"|" \
        -e 's|"api_token": "[^"]*"|"api_token": "sim-token"|' "$example" >"$tmp/envelope.json"
    check "$example on the simulator: packaged run --dry-run == cargo run --release" \
        same_result "$tmp/envelope.json" run --dry-run
done
kill "$simulator" 2>/dev/null || true

# --- 4. Validation refuses (through the packaged binary; every case: cargo test -p xtask) ------
echo "== validation refuses"
binary="$tmp/unpacked/bin/s1-actions"
make_root() { # a copy of the files the packer reads
    rm -rf "$tmp/root" "$tmp/refused"
    mkdir -p "$tmp/root"
    cp -r manifests examples README.md CHANGELOG.md LICENSE "$tmp/root/"
}
refused() { # refused DESCRIPTION EXPECTED-MESSAGE [BINARY]
    local what="$1" message="$2" bin="${3:-$binary}" status=0
    xtask build --root "$tmp/root" --binary "$bin" --out-dir "$tmp/refused" >"$tmp/refused.out" 2>&1 || status=$?
    if [ "$status" -eq 1 ] && [ ! -e "$tmp/refused" ] && grep -q -- "$message" "$tmp/refused.out"; then
        pass "refused: $what"
    else
        fail "refused: $what (exit $status)"; sed 's/^/     /' "$tmp/refused.out"
    fi
}
mitigate="$tmp/root/manifests/sentinelone-mitigate-threats.json"

make_root
check "an untouched copy validates" xtask validate --root "$tmp/root" --binary "$binary"

printf '#!/bin/sh\necho "thread main panicked: manifests/x.json is invalid" >&2\nexit 70\n' >"$tmp/broken-bin"
chmod +x "$tmp/broken-bin"
make_root
refused "spec exits 70 (broken embedded manifest)" "exited 70" "$tmp/broken-bin"

make_root
printf '{ "name": ' >"$mitigate"
refused "manifest is not JSON" "not valid JSON"

make_root
sed -i '0,/"name": "sentinelone-mitigate-threats"/s//"name": "sentinelone-mitigate"/' "$mitigate"
refused "manifest name differs from its file name" "expected 'sentinelone-mitigate-threats'"

make_root
sed -i 's/"kind": "containment",/"kind": "containment", "colour": "red",/' "$mitigate"
refused "manifest differs from the one embedded in the binary" "differs from the manifest embedded"

make_root
rm "$tmp/root/manifests/sentinelone-delete-hashes.json"
refused "an embedded action has no manifest file" "sentinelone-delete-hashes.json is missing"

make_root
sed 's/"name": "sentinelone-delete-hashes"/"name": "sentinelone-extra"/' manifests/sentinelone-delete-hashes.json \
    >"$tmp/root/manifests/sentinelone-extra.json"
refused "a manifest the binary does not know" "the binary has no action 'sentinelone-extra'"

make_root
sed -i 's/"title": "[^"]*"/"title": "Old"/' "$tmp/root/manifests/manifest.schema.json"
refused "stale manifests/manifest.schema.json" "manifest.schema.json is stale"

# --- 5. Manifest diff (every kind of change: cargo test -p xtask) ------------------------------
echo "== manifest diff"
check "diff: identical manifests report nothing" sh -c \
    "cargo run --quiet --locked --package xtask -- package diff manifests '$first_zip' | grep -qx 'no manifest changes'"
mkdir "$tmp/old"
cp manifests/*.json "$tmp/old/"
rm "$tmp/old/sentinelone-delete-hashes.json"
sed -i 's/"label": "Objects Per Run"/"label": "Objects"/' "$tmp/old/sentinelone-mitigate-threats.json"
xtask diff "$tmp/old" "$first_zip" >"$tmp/diff.out"
sed 's/^/     /' "$tmp/diff.out"
expect_line() { check "diff: $1" grep -qxF -- "$1" "$tmp/diff.out"; }
expect_line "sentinelone-mitigate-threats (id 2): version 1.0.0 -> 1.0.0"
expect_line '  ~ label changed: objects_per_run: "Objects" -> "Objects Per Run"'
expect_line "sentinelone-delete-hashes (id 3): action added, version 1.0.0"
check "diff: unchanged action not listed" sh -c "! grep -q sentinelone-blacklist-whitelist-hashes '$tmp/diff.out'"

echo
if [ "$failures" -ne 0 ]; then
    echo "packaging/test.sh: $failures check(s) failed"
    exit 1
fi
echo "packaging/test.sh: all checks passed (sha256 $sha_one)"
