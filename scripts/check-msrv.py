#!/usr/bin/env python3
"""Checks that the workspace's `rust-version` is no lower than what its
locked dependencies need on this platform, so the README's stated minimum
stays true when dependencies move. Only one toolchain exists on the build
machine, so this reads the requirement instead of compiling with it."""
import json
import subprocess
import sys


def version(text):
    # "1.88" and "1.88.0" are one version: padded to three parts, so the
    # stated minimum is not read as below a crate that needs "1.88.0".
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    target = subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True
    ).stdout
    host = next(l.split(": ")[1] for l in target.splitlines() if l.startswith("host: "))
    tree = subprocess.run(
        ["cargo", "tree", "--workspace", "--locked", "--target", host,
         "-e", "normal,build,dev", "--prefix", "none"],
        capture_output=True, text=True, check=True,
    ).stdout
    built = {tuple(line.split()[:2]) for line in tree.splitlines() if line.strip()}
    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        capture_output=True, text=True, check=True,
    ).stdout)
    members = set(metadata["workspace_members"])
    stated = {p["rust_version"] for p in metadata["packages"] if p["id"] in members}
    if len(stated) != 1 or None in stated:
        sys.exit(f"every workspace member must state one rust-version; found {sorted(map(str, stated))}")
    stated = stated.pop()
    needs = [
        (version(p["rust_version"]), p["name"], p["version"])
        for p in metadata["packages"]
        if p.get("rust_version") and (p["name"], "v" + p["version"]) in built
        and p["id"] not in members
    ]
    highest = max(needs)
    if version(stated) < highest[0]:
        sys.exit(
            f"rust-version {stated} is below what {highest[1]} {highest[2]} needs "
            f"({'.'.join(map(str, highest[0]))}): raise it in Cargo.toml and the README"
        )
    print(f"rust-version {stated} covers every dependency (highest need: "
          f"{highest[1]} {highest[2]}, {'.'.join(map(str, highest[0]))})")


main()
