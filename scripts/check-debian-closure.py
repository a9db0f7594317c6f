#!/usr/bin/python3
"""Checks, independently of libsolv, that a set of Debian packages is consistent.

Reads "NAME VERSION" lines on stdin (one version per name) and the machine's apt Packages indexes,
and checks with python3-apt's parser and version comparison (apt_pkg.parse_depends, check_dep) that
every Depends and Pre-Depends of every package is satisfied inside the set, and no Conflicts or
Breaks is hit. Prints one line per violation and exits 1 if there is any; else prints "ok N".
"""
import subprocess
import sys

import apt_pkg

apt_pkg.init()


def index_files():
    out = subprocess.run(["apt-get", "indextargets", "--format", "$(FILENAME)", "Identifier: Packages"],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def load_stanzas(wanted):
    found = {}
    for path in index_files():
        try:
            tagfile = apt_pkg.TagFile(path)
        except apt_pkg.Error:
            continue
        for section in tagfile:
            key = (section["Package"], section["Version"])
            if key in wanted and key not in found:
                found[key] = {field: section.get(field, "") for field in
                              ("Depends", "Pre-Depends", "Conflicts", "Breaks", "Provides", "Multi-Arch")}
    return found


def main():
    selected = {}
    for line in sys.stdin:
        fields = line.split()
        if not fields:
            continue
        name, version = fields
        if name in selected:
            print(f"{name}: two versions, {selected[name]} and {version}")
            return 1
        selected[name] = version
    stanzas = load_stanzas(set(selected.items()))
    problems = [f"{name} {version}: not in any apt index" for name, version in selected.items()
                if (name, version) not in stanzas]

    multi_arch = {name: stanzas.get((name, version), {}).get("Multi-Arch", "") for name, version in selected.items()}
    provided = {}  # virtual name -> [(provider, provided version or "")]
    for (name, version), stanza in stanzas.items():
        for group in apt_pkg.parse_depends(stanza["Provides"], False):
            for virtual, provided_version, _ in group:
                provided.setdefault(virtual, []).append((name, provided_version))

    def satisfiers(name, version, op):
        """Selected packages that satisfy one relation, as dpkg reads it."""
        any_arch = name.endswith(":any")
        name = name[:-4] if any_arch else name
        hits = []
        if name in selected and (not op or apt_pkg.check_dep(selected[name], op, version)):
            hits.append(name)
        for provider, provided_version in provided.get(name, []):
            # An unversioned Provides never satisfies a versioned relation.
            if not op or (provided_version and apt_pkg.check_dep(provided_version, op, version)):
                hits.append(provider)
        if any_arch:
            hits = [hit for hit in hits if multi_arch.get(hit) == "allowed"]
        return hits

    for (name, version), stanza in sorted(stanzas.items()):
        for field in ("Pre-Depends", "Depends"):
            for group in apt_pkg.parse_depends(stanza[field], False):
                if not any(satisfiers(*alternative) for alternative in group):
                    text = " | ".join(f"{n} ({o} {v})" if o else n for n, v, o in group)
                    problems.append(f"{name} {version}: {field} {text} is not satisfied")
        for field in ("Conflicts", "Breaks"):
            for group in apt_pkg.parse_depends(stanza[field], False):
                for relation in group:
                    for hit in satisfiers(*relation):
                        if hit != name:
                            problems.append(f"{name} {version}: {field} {relation[0]} is hit by {hit} {selected[hit]}")
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"ok {len(selected)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
