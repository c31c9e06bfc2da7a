#!/usr/bin/env bash
# Packaging test (run by .ci/run): `./package.sh` twice gives the same sha256; the zip's listing,
# permissions, timestamps and checksums; the packaged binary answers like the development build;
# validation refuses broken manifests; the manifest diff reports doctored manifests.
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
unzip -Z1 "$first_zip" >"$tmp/actual.list"
check "entries are exactly the expected files" diff "$tmp/expected.list" "$tmp/actual.list"
check "entries are stored in sorted order" sh -c "sort -c '$tmp/actual.list'"
# zipinfo columns: permissions, version, system, size, type, method, date, time, name
unzip -Z "$first_zip" | awk '$1 ~ /^[-dl][-r]/ && NF == 9' >"$tmp/zipinfo"
check "zipinfo lists every entry" test "$(wc -l <"$tmp/zipinfo")" -eq "$(wc -l <"$tmp/expected.list")"
check "binary is -rwxr-xr-x, every other file -rw-r--r--, made on Unix" awk '
    $9 == "bin/s1-actions" { if ($1 != "-rwxr-xr-x") bad = 1; next }
    { if ($1 != "-rw-r--r--") bad = 1 }
    $3 != "unx" { bad = 1 }
    END { exit bad }' "$tmp/zipinfo"
check "every entry is deflated" awk '$6 != "defX" && $6 != "defN" { bad = 1 } END { exit bad }' "$tmp/zipinfo"
check "every entry has the same timestamp" test "$(awk '{ print $7, $8 }' "$tmp/zipinfo" | sort -u | wc -l)" -eq 1
check "no extra fields, no data descriptors" python3 - "$first_zip" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    for info in zf.infolist():
        assert info.extra == b"", info.filename
        assert info.flag_bits & 0x08 == 0, info.filename
        assert info.comment == b"", info.filename
    assert zf.comment == b""
EOF

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

target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
check "packaged binary is the release build" cmp "$target_dir/release/s1-actions" "$tmp/unpacked/bin/s1-actions"

# Results without the one volatile field (metrics.duration_ms).
normalise() {
    python3 -c '
import json, sys
doc = json.load(sys.stdin)
if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict):
    doc["metrics"].pop("duration_ms", None)
print(json.dumps(doc, indent=2, sort_keys=True))'
}
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
# console state).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$tmp/unpacked/bin/s1-actions" simulate --port "$port" >"$tmp/simulator.log" 2>&1 &
simulator=$!
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$tmp"' EXIT
python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("simulator did not start")
EOF
for example in examples/*.json; do
    python3 - "$example" "$port" >"$tmp/envelope.json" <<'EOF'
import json, sys
envelope = json.load(open(sys.argv[1]))
envelope["config"].update(hostname=f"http://127.0.0.1:{sys.argv[2]}", api_token="sim-token")
print(json.dumps(envelope))
EOF
    check "$example on the simulator: packaged run --dry-run == cargo run --release" \
        same_result "$tmp/envelope.json" run --dry-run
done
kill "$simulator" 2>/dev/null || true

# --- 4. Validation refuses --------------------------------------------------------------------
echo "== validation refuses"
binary="$tmp/unpacked/bin/s1-actions"
make_root() { # a copy of the files the packer reads
    rm -rf "$tmp/root" "$tmp/refused"
    mkdir -p "$tmp/root"
    cp -r manifests examples README.md CHANGELOG.md LICENSE "$tmp/root/"
}
refused() { # refused DESCRIPTION EXPECTED-MESSAGE [BINARY]
    local what="$1" message="$2" bin="${3:-$binary}" status=0
    python3 packaging/package.py build --root "$tmp/root" --binary "$bin" --out-dir "$tmp/refused" \
        >"$tmp/refused.out" 2>&1 || status=$?
    if [ "$status" -eq 1 ] && [ ! -e "$tmp/refused" ] && grep -q -- "$message" "$tmp/refused.out"; then
        pass "refused: $what"
    else
        fail "refused: $what (exit $status)"; sed 's/^/     /' "$tmp/refused.out"
    fi
}
doctor() { # doctor FILE PYTHON-STATEMENT-ON-m
    python3 - "$1" "$2" <<'EOF'
import json, sys
path, statement = sys.argv[1], sys.argv[2]
with open(path) as f:
    m = json.load(f)
exec(statement)
with open(path, "w") as f:
    json.dump(m, f, indent=2)
EOF
}

make_root
check "an untouched copy validates" python3 packaging/package.py validate --root "$tmp/root" --binary "$binary"

printf '#!/bin/sh\necho "thread main panicked: manifests/x.json is invalid" >&2\nexit 70\n' >"$tmp/broken-bin"
chmod +x "$tmp/broken-bin"
make_root
refused "spec exits 70 (broken embedded manifest)" "exited 70" "$tmp/broken-bin"

make_root
printf '{ "name": ' >"$tmp/root/manifests/sentinelone-mitigate-threats.json"
refused "manifest is not JSON" "not valid JSON"

make_root
doctor "$tmp/root/manifests/sentinelone-mitigate-threats.json" 'm["name"] = "sentinelone-mitigate"'
refused "manifest name differs from its file name" "expected 'sentinelone-mitigate-threats'"

make_root
doctor "$tmp/root/manifests/sentinelone-mitigate-threats.json" 'm["params"][2]["colour"] = "red"'
refused "manifest differs from the one embedded in the binary" "differs from the manifest embedded"

make_root
rm "$tmp/root/manifests/sentinelone-delete-hashes.json"
refused "an embedded action has no manifest file" "sentinelone-delete-hashes.json is missing"

make_root
cp "$tmp/root/manifests/sentinelone-delete-hashes.json" "$tmp/root/manifests/sentinelone-extra.json"
doctor "$tmp/root/manifests/sentinelone-extra.json" 'm["name"] = "sentinelone-extra"'
refused "a manifest the binary does not know" "the binary has no action 'sentinelone-extra'"

make_root
doctor "$tmp/root/manifests/manifest.schema.json" 'm["title"] = "Old"'
refused "stale manifests/manifest.schema.json" "manifest.schema.json is stale"

# --- 5. Manifest diff -------------------------------------------------------------------------
echo "== manifest diff"
mkdir "$tmp/old"
cp manifests/*.json "$tmp/old/"
# The "old" package differs from today's in every way the diff reports.
doctor "$tmp/old/sentinelone-mitigate-threats.json" '
p = {x["name"]: x for x in m["params"]}
p["query"]["name"] = "threat_query"                     # today: renamed to query (same label)
p["max_retries"]["type"] = "string"                      # today: type changed to integer
p["proxy"]["secret"] = True                              # today: secret flag changed
p["objects_per_run"]["default"] = 5000                   # today: default changed
p["mitigation_action"]["options"] = [o for o in p["mitigation_action"]["options"] if o["value"] != "Kill"] + [{"value": "Delete", "label": "Delete"}]
m["params"].append({"name": "legacy_mode", "label": "Legacy Mode", "description": "x", "type": "boolean"})
m["params"] = [x for x in m["params"] if x["name"] != "ca_bundle"]   # today: added
'
doctor "$tmp/old/sentinelone-ioc-export.json" '
i = [x["name"] for x in m["params"]].index("hostname")
m["params"][i]["name"] = "server"                        # same label and position
'
rm "$tmp/old/sentinelone-delete-hashes.json"
python3 packaging/package.py diff "$tmp/old" "$first_zip" >"$tmp/diff.out"
sed 's/^/     /' "$tmp/diff.out"
expect_line() { check "diff: $1" grep -qF -- "$1" "$tmp/diff.out"; }
expect_line "parameter renamed: threat_query -> query (same label)"
expect_line "type changed: max_retries: string -> integer"
expect_line "secret flag changed: proxy: true -> false"
expect_line "default changed: objects_per_run: 5000 -> 10000"
expect_line 'options changed: mitigation_action: added "Kill"; removed "Delete"'
expect_line "parameter added: ca_bundle (text, optional)"
expect_line "parameter removed: legacy_mode (boolean, optional)"
expect_line "parameter renamed: server -> hostname (same label)"
expect_line "sentinelone-delete-hashes (id 3): action added"
expect_line "but the action's major version did not change"
check "diff: unchanged action not listed" sh -c "! grep -q sentinelone-blacklist-whitelist-hashes '$tmp/diff.out'"

# Same position and type, different label: still a rename; different type: removed + added.
cp manifests/sentinelone-mitigate-threats.json "$tmp/old/sentinelone-mitigate-threats.json"
doctor "$tmp/old/sentinelone-mitigate-threats.json" '
p = {x["name"]: x for x in m["params"]}
p["query"]["name"] = "filter"; p["query"]["label"] = "Filter"
p["proxy"]["name"] = "proxy_port"; p["proxy"]["label"] = "Proxy Port"; p["proxy"]["type"] = "integer"
'
python3 packaging/package.py diff "$tmp/old" manifests >"$tmp/diff.out"
expect_line "parameter renamed: filter -> query (same position 4 and type)"
expect_line "parameter removed: proxy_port (integer, optional)"
expect_line "parameter added: proxy (string, optional)"

check "diff: identical manifests report nothing" sh -c \
    "python3 packaging/package.py diff manifests '$first_zip' | grep -qx 'no manifest changes'"

echo
if [ "$failures" -ne 0 ]; then
    echo "packaging/test.sh: $failures check(s) failed"
    exit 1
fi
echo "packaging/test.sh: all checks passed (sha256 $sha_one)"
