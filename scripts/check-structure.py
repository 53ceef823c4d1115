#!/usr/bin/env python3
"""Checks the shape rules of issue 14 on every crate's `src/`, so CI keeps
them: no source file over 800 lines, and no import cycle among a crate's
top-level modules (a module that uses `crate::a` depends on `a`; an item
re-exported at the crate root counts as its module's). Doc comments and
`#[cfg(test)] mod tests` blocks are left out: a doc link is not an import.

Exits 1 with what broke the rule; prints the module graph's size when all
is well. Usage: scripts/check-structure.py [crate dir ...]
"""

import os
import re
import sys

MAX_LINES = 800
CRATES = [
    "stats-core",
    "pipe-writer",
    "host-aggregator",
    "pipe-writer/capi",
    "pipe-writer/python",
    "tests",
]


def sources(crate):
    """(module path, file) for every .rs file under `crate/src`."""
    src = os.path.join(crate, "src")
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                parts = os.path.relpath(path, src)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                yield "::".join(parts), path


def code_of(path):
    """The file's code without doc/line comments and its tests module."""
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(
        line for line in text.split("\n") if not line.strip().startswith("//")
    )


def cycle(edges):
    """One cycle in `edges` (module -> set of modules) as a list, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check(crate):
    problems = []
    files = list(sources(crate))
    tops = {module.split("::")[0] for module, _ in files if module}
    root = next((p for m, p in files if m == "" and p.endswith("lib.rs")), None)
    reexported = {}
    if root:
        for module, items in re.findall(
            r"pub(?:\(crate\))? use (\w+)::\{?([^;]*?)\}?;", code_of(root), re.S
        ):
            for item in re.findall(r"\w+", items):
                reexported[item] = module
    edges = {}
    for module, path in files:
        lines = sum(1 for _ in open(path, encoding="utf-8"))
        if lines > MAX_LINES:
            problems.append(f"{path}: {lines} lines (at most {MAX_LINES})")
        if not module or path.endswith("main.rs") or "/bin/" in path:
            continue
        code = code_of(path)
        names = set(re.findall(r"crate::(\w+)", code))
        for group in re.findall(r"use crate::\{([^;]*)\}", code, re.S):
            names |= set(re.findall(r"\b(\w+)\b", group))
        here = module.split("::")[0]
        for name in names:
            target = name if name in tops else reexported.get(name)
            if target and target != here:
                edges.setdefault(here, set()).add(target)
    found = cycle(edges)
    if found:
        problems.append(f"{crate}: import cycle " + " -> ".join(found))
    links = sum(len(v) for v in edges.values())
    return problems, f"{crate}: {len(files)} files, {len(tops)} modules, {links} links"


def main():
    crates = sys.argv[1:] or CRATES
    failed = False
    for crate in crates:
        problems, summary = check(crate)
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
        print(summary, "(no cycle, no file over 800 lines)" if not problems else "")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
