#!/usr/bin/env python3
"""Where a callgrind dump's heap allocations come from.

    benches/alloc_sites.py DUMP               # the allocator calls in all
    benches/alloc_sites.py DUMP PUSHES [TOP]  # the TOP sites (20), per push

Every Rust allocation and reallocation reaches mimalloc through one of its aligned entry
points, so counting the calls into them counts allocations (`CALLGRIND=1 benches/e2e.sh`
prints the total per push). To say *where* they come from, each call is walked up the call
graph past the allocator and the generic containers (`alloc::`, `core::`, `std::`,
`hashbrown`, `smallvec`, `bytes`, ...) to the first frame of code that chose to allocate.
Callgrind keeps callers one level deep, not whole stacks, so a generic function's
allocations are shared among its callers in proportion to their calls into it: a site's
figure is an estimate, the total is exact.
"""

import collections
import re
import sys

ENTRY = {"mi_malloc_aligned", "mi_zalloc_aligned", "mi_realloc_aligned"}
GLUE = re.compile(
    r"^<?(__rust|__rdl|alloc::|core::|std::|mi_|_mi|hashbrown|smallvec|bytes::)"
)


def base(name):
    """A function's name without callgrind's `'2` recursion suffix."""
    return name.split("'")[0]


def call_graph(path):
    """callee -> caller -> calls, from a dump's `fn=`/`cfn=`/`calls=` records."""
    names, graph = {}, collections.defaultdict(collections.Counter)
    caller = callee = None
    for line in open(path, errors="replace"):
        named = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
        if named:
            kind, number, name = named.groups()
            if name:
                names[number] = name.strip()
            if kind == "fn":
                caller, callee = names.get(number), None
            else:
                callee = names.get(number)
        elif line.startswith("calls=") and callee is not None:
            graph[callee][caller] += int(line.split()[0][len("calls="):])
            callee = None
    return graph


def sites(graph):
    """Allocations by the first caller that is not allocator or container glue."""
    found = collections.Counter()

    def walk(name, count, depth):
        callers = graph.get(name)
        is_glue = base(name) in ENTRY or GLUE.match(base(name))
        if depth > 16 or not callers or not is_glue:
            found[name] += count
            return
        total = sum(callers.values())
        for caller, calls in callers.items():
            walk(caller, count * calls / total, depth + 1)

    for name, callers in graph.items():
        if base(name) in ENTRY:
            for caller, calls in callers.items():
                walk(caller, calls, 0)
    return found


def main():
    graph = call_graph(sys.argv[1])
    if len(sys.argv) == 2:
        print(sum(n for name, c in graph.items() if base(name) in ENTRY for n in c.values()))
        return
    pushes = float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    found = sites(graph)
    for name, count in found.most_common(top):
        print(f"{count / pushes:7.2f}  {name[:140]}")
    print(f"{sum(found.values()) / pushes:7.2f}  in all, per push")


if __name__ == "__main__":
    main()
