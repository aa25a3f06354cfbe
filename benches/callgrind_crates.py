#!/usr/bin/env python3
"""Where a callgrind dump's instructions go, library by library.

    benches/callgrind_crates.py DUMP PUSHES [TOP]  # the TOP crates (25), instructions per push

Each function's own instructions (its self cost, not what it calls) are filed under the
source file they were compiled from, and each file under its crate: a file of the cargo
registry under the crate it comes from, the standard library's under `std:core`, `std:alloc`
and so on, ringcast's own under `ringcast`, C code (glibc's `memcpy`, mimalloc) under its
file's name. Inlined code is filed where it was written, not where it was inlined into, so
a crate's figure is the code of that crate wherever it ran. `CALLGRIND=1 benches/e2e.sh`
leaves the dumps (`callgrind.out.2` is the counted phase) and prints the pushes.
"""

import collections
import re
import sys

# A cost line starts with its position: a number, or one relative to the last (+n, -n, *).
COST = re.compile(r"^[0-9+*-]")
COMPRESSED = re.compile(r"\((\d+)\)(?: (.*))?")


def self_cost_by_file(path):
    """file -> instructions, over every cost line that is a function's own."""
    files, cost = {}, collections.Counter()
    positions, current, inlined, after_call = 1, "?", None, False

    def file_name(text):
        # `(id) name` defines a compressed name, `(id)` repeats it.
        match = COMPRESSED.match(text)
        if not match:
            return text
        number, name = match.groups()
        if name is not None:
            files[number] = name
        return files.get(number, "?")

    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith("fl="):
            current, inlined = file_name(line[3:]), None
        elif line.startswith(("fi=", "fe=")):
            inlined = file_name(line[3:])
        elif line.startswith("fn="):
            inlined = None
        elif line.startswith(("cfi=", "cfl=")):
            file_name(line[4:])  # only to learn a compressed name
        elif line.startswith("calls="):
            after_call = True  # the next cost line is the call's inclusive cost
        elif COST.match(line):
            if after_call:
                after_call = False
                continue
            fields = line.split()
            if len(fields) > positions:
                cost[inlined or current] += int(fields[positions])
    return cost


def crate(path):
    """The library a source file belongs to."""
    registry = re.search(r"/registry/src/[^/]+/([^/]+?)-\d[^/]*/", path)
    if registry:
        return registry.group(1)
    library = re.search(r"/rustc/[^/]+/library/([^/]+)/", path)
    if library:
        return "std:" + library.group(1)
    # What is left under a src/ folder is ringcast's: the registry's and the standard
    # library's were matched above.
    if path.startswith("src/") or "/src/" in path:
        return "ringcast"
    return path.rsplit("/", 1)[-1]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, pushes = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    by_crate = collections.Counter()
    for file, instructions in self_cost_by_file(path).items():
        by_crate[crate(file)] += instructions
    total = sum(by_crate.values())
    print(f"{total / pushes:10,.0f}  100.0 %  in all, per push")
    for name, instructions in by_crate.most_common(top):
        print(f"{instructions / pushes:10,.0f}  {100 * instructions / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
