#!/usr/bin/env python3
"""Marketplace packaging for s1-actions: validate, diff manifests, write a reproducible zip.

Python 3.9+ standard library only. `./package.sh` builds the release binary and calls
`package.py build`; the other commands exist for tests and for people:

    package.py build    --root DIR --binary FILE --out-dir DIR --epoch SECONDS [--previous PATH]
    package.py validate --root DIR --binary FILE
    package.py diff     OLD NEW        (each a package zip, a directory of manifests, or a checkout)

Exit codes: 0 done; 1 validation failed (nothing written); 2 usage or unreadable input.

The marketplace layout of a ThreatQ action zip is not publicly documented, so every file name
inside the zip comes from the LAYOUT table below and nowhere else.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

# --------------------------------------------------------------------------------------------
# The package layout: the one place that names files inside the zip.
# --------------------------------------------------------------------------------------------

ZIP_NAME = "sentinelone-action-bundle-{version}.zip"
BINARY_ENTRY = "bin/s1-actions"
MANIFEST_DIR = "manifests"  # every manifests/*.json of the repository, copied byte for byte
SCHEMA_ENTRIES = {  # zip entry -> key of `s1-actions spec`'s "schemas"
    "schemas/envelope.schema.json": "envelope",
    "schemas/result.schema.json": "result",
    "schemas/manifest.schema.json": "manifest",
}
DOC_ENTRIES = ("README.md", "CHANGELOG.md", "LICENSE")  # copied from the repository root
CHECKSUMS_ENTRY = "checksums.sha256"  # sha256sum format over every other entry

EXECUTABLE_MODE = 0o755
FILE_MODE = 0o644
COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESS_LEVEL = 9
MANIFEST_SCHEMA_FILE = "manifest.schema.json"  # in manifests/, next to the manifests it describes
DOS_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold


class Refused(Exception):
    """Validation failed: the package must not be written."""


class Unreadable(Exception):
    """An input (previous package, directory) could not be read."""


def say(message: str = "") -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def run_spec(binary: Path) -> dict:
    """`s1-actions spec`, parsed; Refused if it fails (a broken embedded manifest exits 70)."""
    if not binary.is_file():
        raise Refused(f"binary not found: {binary}")
    try:
        proc = subprocess.run(
            [str(binary), "spec"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120
        )
    except OSError as err:
        raise Refused(f"cannot run {binary} spec: {err}") from err
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise Refused(
            f"`s1-actions spec` exited {proc.returncode} (an embedded manifest is broken?)"
            + "".join(f"\n    {line}" for line in tail)
        )
    try:
        spec = json.loads(proc.stdout)
    except ValueError as err:
        raise Refused(f"`s1-actions spec` printed invalid JSON: {err}") from err
    problems = []
    if not isinstance(spec.get("runner", {}).get("version"), str):
        problems.append("runner.version missing")
    if not isinstance(spec.get("actions"), list) or not spec["actions"]:
        problems.append("no actions")
    for key in SCHEMA_ENTRIES.values():
        if not isinstance(spec.get("schemas", {}).get(key), dict):
            problems.append(f"schemas.{key} missing")
    if problems:
        raise Refused("`s1-actions spec` output is incomplete: " + "; ".join(problems))
    return spec


def is_manifest_file(path: Path) -> bool:
    return path.suffix == ".json" and not path.name.endswith(".schema.json")


def strip_keys(value: dict, *keys: str) -> dict:
    return {k: v for k, v in value.items() if k not in keys}


def validate(root: Path, binary: Path) -> tuple[dict, list[Path], list[str]]:
    """Checks the binary's spec against `manifests/` and the examples.

    Returns (spec, manifest files, warnings); raises Refused listing every problem found.
    """
    spec = run_spec(binary)
    problems: list[str] = []
    warnings: list[str] = []
    manifest_dir = root / MANIFEST_DIR
    files = sorted(p for p in manifest_dir.glob("*.json") if is_manifest_file(p))
    if not files:
        raise Refused(f"no manifests in {manifest_dir}")

    embedded = {}
    for action in spec["actions"]:
        name = action.get("name")
        if name in embedded:
            problems.append(f"spec lists action {name!r} twice")
        embedded[name] = action
        if action.get("implemented") is not True:
            problems.append(f"action {name!r} has a manifest but no implementation")
    ids = [a.get("id") for a in spec["actions"]]
    if len(set(ids)) != len(ids):
        problems.append(f"action ids are not unique: {ids}")

    seen = set()
    for path in files:
        rel = f"{MANIFEST_DIR}/{path.name}"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            problems.append(f"{rel}: not valid JSON: {err}")
            continue
        if not isinstance(manifest, dict):
            problems.append(f"{rel}: not a JSON object")
            continue
        name = manifest.get("name")
        if name != path.stem:
            problems.append(f"{rel}: name is {name!r}, expected {path.stem!r} (the file name)")
            continue
        seen.add(name)
        if name not in embedded:
            problems.append(f"{rel}: the binary has no action {name!r} (not embedded in src/manifest.rs?)")
            continue
        if strip_keys(manifest, "$schema") != strip_keys(embedded[name], "$schema", "implemented"):
            problems.append(
                f"{rel}: differs from the manifest embedded in the binary (rebuild, or the file "
                "does not survive the binary's parser: unknown or misspelled key?)"
            )
    for name in embedded:
        if name not in seen and not (manifest_dir / f"{name}.json").exists():
            problems.append(f"action {name!r} is embedded in the binary but {MANIFEST_DIR}/{name}.json is missing")

    schema_file = manifest_dir / MANIFEST_SCHEMA_FILE
    if schema_file.exists():
        try:
            committed = json.loads(schema_file.read_text(encoding="utf-8"))
        except ValueError as err:
            problems.append(f"{MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE}: not valid JSON: {err}")
        else:
            if committed != spec["schemas"]["manifest"]:
                problems.append(
                    f"{MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE} is stale: regenerate with "
                    f"`s1-actions spec | jq .schemas.manifest > {MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE}`"
                )

    # Smoke test of the binary itself: every published example envelope must validate.
    for example in sorted((root / "examples").glob("*.json")):
        proc = subprocess.run(
            [str(binary), "validate", "--input", str(example)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        if proc.returncode != 0:
            problems.append(f"examples/{example.name}: `s1-actions validate` exited {proc.returncode}")

    version = spec["runner"]["version"]
    changelog = root / "CHANGELOG.md"
    if changelog.exists() and f"[{version}]" not in changelog.read_text(encoding="utf-8"):
        warnings.append(f"CHANGELOG.md has no section for version {version}")
    for doc in DOC_ENTRIES:
        if not (root / doc).is_file():
            problems.append(f"{doc} is missing")

    if problems:
        raise Refused("\n".join(f"  - {p}" for p in problems))
    return spec, files, warnings


# --------------------------------------------------------------------------------------------
# Manifest diff
# --------------------------------------------------------------------------------------------


def load_manifests(source: Path) -> dict[str, dict]:
    """Manifests by name from a package zip, a manifests directory, or a checkout."""
    texts: dict[str, str] = {}
    if source.is_file():
        try:
            with zipfile.ZipFile(source) as zf:
                for entry in zf.namelist():
                    parts = PurePosixPath(entry).parts
                    if (
                        len(parts) >= 2
                        and parts[-2] == MANIFEST_DIR
                        and is_manifest_file(Path(parts[-1]))
                    ):
                        texts[entry] = zf.read(entry).decode("utf-8")
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as err:
            raise Unreadable(f"{source}: not a readable zip: {err}") from err
    elif source.is_dir():
        directory = source / MANIFEST_DIR if (source / MANIFEST_DIR).is_dir() else source
        for path in sorted(directory.glob("*.json")):
            if is_manifest_file(path):
                texts[str(path)] = path.read_text(encoding="utf-8")
    else:
        raise Unreadable(f"{source}: no such file or directory")
    manifests: dict[str, dict] = {}
    for where, text in sorted(texts.items()):
        try:
            manifest = json.loads(text)
        except ValueError as err:
            raise Unreadable(f"{where}: not valid JSON: {err}") from err
        if isinstance(manifest, dict) and isinstance(manifest.get("name"), str) and isinstance(
            manifest.get("params"), list
        ):
            manifests[manifest["name"]] = manifest
    if not manifests:
        raise Unreadable(f"{source}: no manifests found")
    return manifests


def show(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def param_kind(param: dict) -> str:
    return param.get("type", "?")


def describe_param(param: dict) -> str:
    bits = [param_kind(param)]
    bits.append("required" if param.get("required") else "optional")
    if param.get("secret"):
        bits.append("secret")
    if "default" in param:
        bits.append(f"default {show(param['default'])}")
    return f"{param.get('name')} ({', '.join(bits)})"


def match_renames(removed: list[tuple[int, dict]], added: list[tuple[int, dict]]):
    """Pairs removed and added parameters that are most likely one parameter renamed.

    Heuristic, in this order:
      1. same label (unique on both sides) -> renamed;
      2. same position in the parameter list and same type -> renamed.
    Anything left is reported as removed and added.
    """
    pairs = []
    removed, added = list(removed), list(added)

    def unique_label(items, label):
        return [item for item in items if item[1].get("label") == label]

    for old in list(removed):
        label = old[1].get("label")
        olds = unique_label(removed, label)
        news = unique_label(added, label)
        if label and len(olds) == 1 and len(news) == 1:
            pairs.append((old, news[0], "same label"))
            removed.remove(old)
            added.remove(news[0])
    for old in list(removed):
        news = [n for n in added if n[0] == old[0] and param_kind(n[1]) == param_kind(old[1])]
        if len(news) == 1:
            pairs.append((old, news[0], f"same position {old[0] + 1} and type"))
            removed.remove(old)
            added.remove(news[0])
    return pairs, removed, added


def option_values(param: dict) -> list:
    return [o.get("value") if isinstance(o, dict) else o for o in param.get("options", [])]


def compare_param(old: dict, new: dict) -> list[tuple[bool, str]]:
    """(breaking, line) for each change of one parameter, old and new already paired."""
    name = new.get("name")
    changes = []
    if param_kind(old) != param_kind(new):
        changes.append((True, f"type changed: {name}: {param_kind(old)} -> {param_kind(new)}"))
    if bool(old.get("secret")) != bool(new.get("secret")):
        changes.append(
            (True, f"secret flag changed: {name}: {show(bool(old.get('secret')))} -> {show(bool(new.get('secret')))}")
        )
    if bool(old.get("required")) != bool(new.get("required")):
        breaking = bool(new.get("required")) and "default" not in new
        changes.append(
            (breaking, f"required changed: {name}: {show(bool(old.get('required')))} -> {show(bool(new.get('required')))}")
        )
    if old.get("default") != new.get("default") or ("default" in old) != ("default" in new):
        before = show(old["default"]) if "default" in old else "(none)"
        after = show(new["default"]) if "default" in new else "(none)"
        changes.append((False, f"default changed: {name}: {before} -> {after}"))
    old_values, new_values = option_values(old), option_values(new)
    if old_values != new_values:
        gone = [v for v in old_values if v not in new_values]
        came = [v for v in new_values if v not in old_values]
        parts = []
        if came:
            parts.append("added " + ", ".join(show(v) for v in came))
        if gone:
            parts.append("removed " + ", ".join(show(v) for v in gone))
        if not parts:
            parts.append("reordered")
        changes.append((bool(gone), f"options changed: {name}: {'; '.join(parts)}"))
    elif old.get("options") != new.get("options"):
        changes.append((False, f"option labels changed: {name}"))
    if old.get("label") != new.get("label"):
        changes.append((False, f"label changed: {name}: {show(old.get('label'))} -> {show(new.get('label'))}"))
    for key in ("min", "max", "min_length", "max_length", "max_items", "pattern", "format"):
        if old.get(key) != new.get(key):
            changes.append(
                (False, f"{key} changed: {name}: {show(old.get(key))} -> {show(new.get(key))}")
            )
    return changes


def major(version) -> str:
    return str(version or "0").split(".")[0]


def diff_action(old: dict, new: dict) -> list[tuple[bool, str]]:
    changes: list[tuple[bool, str]] = []
    old_params = {p.get("name"): (i, p) for i, p in enumerate(old.get("params", []))}
    new_params = {p.get("name"): (i, p) for i, p in enumerate(new.get("params", []))}
    removed = [old_params[n] for n in old_params if n not in new_params]
    added = [new_params[n] for n in new_params if n not in old_params]
    pairs, removed, added = match_renames(removed, added)
    for _, param in added:
        breaking = bool(param.get("required")) and "default" not in param
        changes.append((breaking, f"parameter added: {describe_param(param)}"))
    for _, param in removed:
        changes.append((True, f"parameter removed: {describe_param(param)}"))
    for (_, old_param), (_, new_param), why in pairs:
        changes.append(
            (True, f"parameter renamed: {old_param.get('name')} -> {new_param.get('name')} ({why})")
        )
        changes.extend(compare_param(old_param, new_param))
    for name, (_, new_param) in new_params.items():
        if name in old_params:
            changes.extend(compare_param(old_params[name][1], new_param))
    old_accepts, new_accepts = old.get("accepts", []), new.get("accepts", [])
    if old_accepts != new_accepts:
        changes.append((False, f"accepted types changed: {show(old_accepts)} -> {show(new_accepts)}"))
    old_out = [a.get("name") for a in old.get("outputs", {}).get("attributes", [])]
    new_out = [a.get("name") for a in new.get("outputs", {}).get("attributes", [])]
    if old_out != new_out:
        changes.append((False, f"output attributes changed: {show(old_out)} -> {show(new_out)}"))
    return changes


def diff_manifests(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    """Readable report lines; empty when nothing a ThreatQ administrator sees has changed."""
    lines: list[str] = []
    # An action renamed (same numeric id, different name) is still one action.
    old_by_id = {m.get("id"): m for m in old.values()}
    matched_old = set()
    for name in sorted(new, key=lambda n: (new[n].get("id", 0), n)):
        manifest = new[name]
        before = old.get(name)
        if before is None and manifest.get("id") in old_by_id and old_by_id[manifest["id"]]["name"] not in new:
            before = old_by_id[manifest["id"]]
        if before is None:
            lines.append(f"{name} (id {manifest.get('id')}): action added, version {manifest.get('version')}")
            continue
        matched_old.add(before["name"])
        changes = diff_action(before, manifest)
        if before["name"] != name:
            changes.insert(0, (True, f"action renamed: {before['name']} -> {name}"))
        if not changes and before.get("version") == manifest.get("version"):
            continue
        head = f"{name} (id {manifest.get('id')}): version {before.get('version')} -> {manifest.get('version')}"
        lines.append(head)
        for breaking, line in changes:
            lines.append(f"  {'!' if breaking else '~'} {line}")
        if any(b for b, _ in changes) and major(before.get("version")) == major(manifest.get("version")):
            lines.append(
                "  warning: configuration changes marked ! break existing configurations, "
                "but the action's major version did not change"
            )
    for name in sorted(old):
        if name not in new and name not in matched_old:
            lines.append(f"{name} (id {old[name].get('id')}): action removed")
    return lines


def print_diff(previous: Path, current: dict[str, dict]) -> None:
    lines = diff_manifests(load_manifests(previous), current)
    say(f"Manifest changes since {previous}:")
    if not lines:
        say("  none: existing configurations carry over unchanged")
    else:
        for line in lines:
            say(f"  {line}")
        say("  (! = existing configurations need attention after the upgrade; ~ = compatible)")
        say("  (renames are guessed: same label, else same position and type)")


# --------------------------------------------------------------------------------------------
# The zip
# --------------------------------------------------------------------------------------------


def dos_time(epoch: int) -> tuple:
    epoch = max(int(epoch), DOS_EPOCH)
    t = time.gmtime(epoch)
    if t.tm_year > 2107:
        t = time.gmtime(DOS_EPOCH)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


def schema_text(schema: dict) -> bytes:
    return (json.dumps(schema, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def package_entries(root: Path, binary: Path, spec: dict) -> dict[str, tuple[bytes, int]]:
    entries: dict[str, tuple[bytes, int]] = {BINARY_ENTRY: (binary.read_bytes(), EXECUTABLE_MODE)}
    for path in sorted((root / MANIFEST_DIR).glob("*.json")):
        entries[f"{MANIFEST_DIR}/{path.name}"] = (path.read_bytes(), FILE_MODE)
    for entry, key in SCHEMA_ENTRIES.items():
        entries[entry] = (schema_text(spec["schemas"][key]), FILE_MODE)
    for doc in DOC_ENTRIES:
        entries[doc] = ((root / doc).read_bytes(), FILE_MODE)
    checksums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, (data, _) in sorted(entries.items())
    )
    entries[CHECKSUMS_ENTRY] = (checksums.encode("ascii"), FILE_MODE)
    return entries


def write_zip(path: Path, entries: dict[str, tuple[bytes, int]], epoch: int) -> None:
    """Sorted entries, one fixed timestamp, fixed Unix permissions, no extra fields."""
    stamp = dos_time(epoch)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(entries):
            data, mode = entries[name]
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # Unix, so external_attr carries the permissions
            info.external_attr = (0o100000 | mode) << 16  # regular file
            info.compress_type = COMPRESSION
            zf.writestr(info, data, compress_type=COMPRESSION, compresslevel=COMPRESS_LEVEL)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    spec, files, warnings = validate(Path(args.root), Path(args.binary))
    for warning in warnings:
        say(f"warning: {warning}")
    say(
        f"valid: {len(files)} manifests match the {len(spec['actions'])} actions of "
        f"s1-actions {spec['runner']['version']}"
    )
    return 0


def cmd_diff(args) -> int:
    lines = diff_manifests(load_manifests(Path(args.old)), load_manifests(Path(args.new)))
    for line in lines or ["no manifest changes"]:
        say(line)
    return 0


def cmd_build(args) -> int:
    root, binary = Path(args.root), Path(args.binary)
    spec, files, warnings = validate(root, binary)
    version = spec["runner"]["version"]
    say(f"valid: {len(files)} manifests match the {len(spec['actions'])} actions of s1-actions {version}")
    for warning in warnings:
        say(f"warning: {warning}")
    if args.previous:
        print_diff(Path(args.previous), load_manifests(root / MANIFEST_DIR))
    entries = package_entries(root, binary, spec)
    out = Path(args.out_dir) / ZIP_NAME.format(version=version)
    write_zip(out, entries, args.epoch)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    (out.parent / (out.name + ".sha256")).write_text(f"{digest}  {out.name}\n", encoding="ascii")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(args.epoch, DOS_EPOCH)))
    say(f"wrote {out} ({len(entries)} files, timestamps {stamp})")
    say(f"sha256 {digest}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="package.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="validate, print the manifest diff, write the zip")
    build.add_argument("--root", default=".")
    build.add_argument("--binary", required=True)
    build.add_argument("--out-dir", default="dist")
    build.add_argument("--epoch", type=int, default=DOS_EPOCH, help="timestamp of every entry")
    build.add_argument("--previous", help="older package zip or manifests directory to diff against")
    build.set_defaults(func=cmd_build)
    check = sub.add_parser("validate", help="validate only")
    check.add_argument("--root", default=".")
    check.add_argument("--binary", required=True)
    check.set_defaults(func=cmd_validate)
    diff = sub.add_parser("diff", help="manifest changes from OLD to NEW (zip or directory)")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.set_defaults(func=cmd_diff)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Refused as err:
        print(f"package: refused, validation failed:\n{err}", file=sys.stderr)
        print("package: no package written", file=sys.stderr)
        return 1
    except Unreadable as err:
        print(f"package: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
