#!/usr/bin/env bash
# Checks the licence of every package in the workspace's dependency tree
# (Cargo.lock, dev-dependencies included, for this machine's platform)
# against scripts/licences-allowed.txt, and that the workspace's own crates
# are `MIT OR Apache-2.0`. A package without a licence expression must be
# listed in scripts/licences-exceptions.txt with a reason. Prints every
# violation and exits 1 if there is any; changes no file.
#
# It reads `cargo metadata`, offline when the registry cache already holds
# every package (as it does after a build), online otherwise. The fuzz and
# bench crates are separate workspaces and not checked: they are not
# shipped. The web console's npm packages (console/package-lock.json,
# every one, the build and test tools included) are checked against the
# same list: uPlot is compiled into the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
platform="$(rustc -vV | sed -n 's/^host: //p')"
metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
metadata_args=(metadata --format-version 1 --locked --filter-platform "$platform")
cargo "${metadata_args[@]}" --offline >"$metadata" 2>/dev/null ||
    cargo "${metadata_args[@]}" >"$metadata"

python3 - "$metadata" scripts/licences-allowed.txt scripts/licences-exceptions.txt console/package-lock.json <<'PYTHON'
import json
import re
import sys

OWN_LICENCE = "MIT OR Apache-2.0"

metadata_path, allowed_path, exceptions_path, npm_lock_path = sys.argv[1:5]


def entries(path):
    """The lines of a list file, without comments and blank lines."""
    with open(path, encoding="utf-8") as file:
        lines = (line.split("#", 1)[0].strip() for line in file)
        return [line for line in lines if line]


allowed = set(entries(allowed_path))
exceptions = {}
for line in entries(exceptions_path):
    name, _, reason = line.partition(" ")
    exceptions[name] = reason.strip()


def tokens(expression):
    """SPDX tokens. Crates written before SPDX expressions use `/` for OR."""
    return re.findall(r"\(|\)|/|[^\s()/]+", expression)


def satisfiable(expression):
    """Whether the licences in `allowed` satisfy an SPDX expression. WITH
    binds tighter than AND, which binds tighter than OR."""
    words = tokens(expression)
    position = 0

    def peek():
        return words[position] if position < len(words) else None

    def take():
        nonlocal position
        word = peek()
        if word is None:
            raise ValueError("unexpected end")
        position += 1
        return word

    def disjunction():
        value = conjunction()
        while peek() in ("OR", "/"):
            take()
            # Evaluate both sides: a malformed right side is an error too.
            value = conjunction() or value
        return value

    def conjunction():
        value = licence()
        while peek() == "AND":
            take()
            value = licence() and value
        return value

    def licence():
        word = take()
        if word == "(":
            value = disjunction()
            if take() != ")":
                raise ValueError("unbalanced parentheses")
        elif word in ("AND", "OR", "WITH", ")", "/"):
            raise ValueError(f"unexpected {word!r}")
        else:
            # `Apache-2.0+` means that version or later: the listed
            # version is one of the choices.
            value = word.removesuffix("+") in allowed
        if peek() == "WITH":
            take()
            exception = take()
            if exception in ("AND", "OR", "WITH", "(", ")", "/"):
                raise ValueError(f"no exception after WITH, but {exception!r}")
            # An exception only grants additional permissions.
        return value

    value = disjunction()
    if position != len(words):
        raise ValueError(f"unexpected {words[position]!r}")
    return value


with open(metadata_path, encoding="utf-8") as file:
    metadata = json.load(file)
own_packages = set(metadata["workspace_members"])
violations = []
names = set()
for package in sorted(metadata["packages"], key=lambda p: (p["name"], p["version"])):
    name, version, licence = package["name"], package["version"], package["license"]
    names.add(name)
    where = f"{name} {version}"
    if package["id"] in own_packages:
        if licence != OWN_LICENCE:
            violations.append(f"{where}: the workspace's own crates are {OWN_LICENCE!r}, not {licence!r}")
        continue
    if licence is None:
        if name not in exceptions:
            violations.append(
                f"{where}: no licence expression (license-file {package['license_file']!r}); "
                "read it and list the package in scripts/licences-exceptions.txt with a reason"
            )
        continue
    if name in exceptions:
        violations.append(f"{where}: listed in scripts/licences-exceptions.txt but states {licence!r}; remove it there")
        continue
    try:
        if not satisfiable(licence):
            violations.append(f"{where}: {licence!r} is not satisfiable with scripts/licences-allowed.txt")
    except ValueError as error:
        violations.append(f"{where}: cannot parse the licence expression {licence!r}: {error}")
with open(npm_lock_path, encoding="utf-8") as file:
    npm_packages = json.load(file)["packages"]
for path, package in sorted(npm_packages.items()):
    if path == "":
        if package.get("license") != OWN_LICENCE:
            violations.append(f"console: the console's own package is {OWN_LICENCE!r}")
        continue
    where = f"npm {path.removeprefix('node_modules/')} {package.get('version')}"
    try:
        if not satisfiable(package.get("license") or "(none)"):
            violations.append(f"{where}: {package.get('license')!r} is not satisfiable with scripts/licences-allowed.txt")
    except ValueError as error:
        violations.append(f"{where}: cannot parse the licence expression {package.get('license')!r}: {error}")
for name in sorted(set(exceptions) - names):
    violations.append(f"{name}: listed in scripts/licences-exceptions.txt but not a dependency; remove it there")

for violation in violations:
    print(f"licence check: {violation}", file=sys.stderr)
if violations:
    print(f"licence check: {len(violations)} violation(s)", file=sys.stderr)
    sys.exit(1)
print(f"licence check: {len(metadata['packages'])} crates and {len(npm_packages) - 1} npm packages, all allowed")
PYTHON
