#!/usr/bin/env python3
"""Dependency policy check, run in CI (a small stand-in for `cargo deny check licenses bans`,
which needs a long build; deny.toml states the same policy for those who have cargo-deny):
every package in the build graph of the two published crates has an allowed license, no
crate is built in two versions, no dependency requirement is a wildcard, and no normal or
build dependency (all features on) needs a newer Rust than the declared `rust-version`
(clippy's `incompatible_msrv` lint checks our own use of std against it)."""
import json
import subprocess
import sys

ALLOWED = {"MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "Unicode-3.0", "BSD-2-Clause",
           "BSD-3-Clause", "ISC", "Zlib", "Unlicense", "0BSD", "MPL-2.0"}
# Packages allowed in two versions, with the reason.
DUPLICATES_OK = {
    # tempfile (a dev-dependency) pulls getrandom 0.3 while proptest's rand pulls 0.2
    "getrandom", "rand", "rand_core", "rand_chacha", "wasi", "r-efi",
    # the windows-sys family differs between windows-sys consumers on the Windows target
    "windows-sys", "windows-targets", "windows_x86_64_gnu", "windows_x86_64_msvc",
    "windows_aarch64_msvc", "windows_aarch64_gnullvm", "windows_i686_gnu", "windows_i686_msvc",
    "windows_i686_gnullvm", "windows_x86_64_gnullvm", "windows-link",
}
PUBLISHED = {"flufl-lock", "flufl-lock-cli"}


def license_ok(expr):
    if not expr:
        return False
    for alternative in expr.replace("(", "").replace(")", "").split(" OR "):
        parts = [p.strip() for p in alternative.split(" AND ")]
        if all(p in ALLOWED or p.replace("/", " OR ") in ALLOWED for p in parts):
            return True
        if "/" in alternative and any(p.strip() in ALLOWED for p in alternative.split("/")):
            return True
    return False


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--all-features"]))
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    roots = [p["id"] for p in meta["packages"] if p["name"] in PUBLISHED and p["source"] is None]
    seen, stack = set(), list(roots)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        for d in nodes[i]["deps"]:
            stack.append(d["pkg"])
    problems = []
    versions = {}
    for i in seen:
        p = pkgs[i]
        if p["source"] is None:
            continue
        versions.setdefault(p["name"], set()).add(p["version"])
        if not license_ok(p.get("license")):
            problems.append(f"license not allowed: {p['name']} {p['version']}: {p.get('license')}")
    for name, vs in sorted(versions.items()):
        if len(vs) > 1 and name not in DUPLICATES_OK:
            problems.append(f"built in several versions: {name} {sorted(vs)}")
    for i in roots:
        # (A crate's dev-dependency on itself, to turn on a test feature, is not a wildcard.)
        for d in pkgs[i]["dependencies"]:
            if d["req"] in ("*", "") and d["name"] != pkgs[i]["name"]:
                problems.append(f"wildcard requirement: {pkgs[i]['name']} -> {d['name']}")
    # MSRV: the graph of normal and build dependencies only (tests may need newer).
    def vtuple(v):
        return tuple(int(x) for x in v.split("."))
    declared = {pkgs[i]["rust_version"] for i in roots}
    if len(declared) != 1 or None in declared:
        problems.append(f"published crates must declare one rust-version, found {declared}")
    else:
        msrv = declared.pop()
        normal, stack = set(), list(roots)
        while stack:
            i = stack.pop()
            if i in normal:
                continue
            normal.add(i)
            for d in nodes[i]["deps"]:
                if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
                    stack.append(d["pkg"])
        for i in normal:
            rv = pkgs[i].get("rust_version")
            if rv and vtuple(rv) > vtuple(msrv):
                problems.append(f"{pkgs[i]['name']} {pkgs[i]['version']} needs Rust {rv} > rust-version {msrv}")
        print(f"rust-version {msrv}: {len(normal)} packages in the normal/build graph checked")
    print(f"checked {len(seen)} packages in the graph of {', '.join(sorted(PUBLISHED))}")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
