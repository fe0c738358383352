#!/usr/bin/env python3
"""Prints the import cycles between the modules of `src/` (top-level modules, e.g. `services`,
and the files inside each), and the imports that reach into `http` (or use axum) from
outside `src/http/`, `src/gateway/`, `src/app.rs`, `src/cli.rs`. Exits 1 when there is any.

    python3 scripts/module-graph.py          # cycles and upward imports; nothing printed = clean
    python3 scripts/module-graph.py --edges  # also the module graph itself
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
EDGE_ALLOWED = {"http", "gateway", "app.rs", "cli.rs", "main.rs", "lib.rs"}
PATH = re.compile(r"\bcrate::([a-z_]+)(?:::([a-z_]+))?")
USE_GROUP = re.compile(r"\buse crate::\{([^;]*)\};", re.S)


def module_of(path):
    rel = path.relative_to(ROOT)
    top = rel.parts[0]
    return top[:-3] if top.endswith(".rs") else top


def file_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def strip(text):
    # Comments and doc comments name modules without importing them; tests may import freely.
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def references(text):
    found = set()
    for m in PATH.finditer(text):
        found.add((m.group(1), m.group(2)))
    for group in USE_GROUP.finditer(text):
        for item in re.split(r",(?![^{]*\})", group.group(1)):
            parts = [p for p in re.split(r"::", item.strip()) if p]
            if parts:
                sub = parts[1] if len(parts) > 1 and re.fullmatch(r"[a-z_]+", parts[1]) else None
                found.add((parts[0].strip("{} \n"), sub))
    return found


def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    files = sorted(ROOT.rglob("*.rs"))
    modules = {module_of(p) for p in files}
    top, inner, upward = {}, {}, []
    for path in files:
        text = strip(path.read_text())
        mod, name = module_of(path), file_of(path)
        rel = path.relative_to(ROOT)
        for target, sub in references(text):
            if target not in modules:
                continue
            if target != mod:
                top.setdefault(mod, set()).add(target)
            elif sub:
                other = f"{target}::{sub}"
                if other != name and not name.startswith(other + "::"):
                    inner.setdefault(name, set()).add(other)
            if target == "http" and rel.parts[0] not in EDGE_ALLOWED:
                upward.append(f"{rel}: uses crate::http")
        if rel.parts[0] not in EDGE_ALLOWED and re.search(r"\baxum::", text):
            upward.append(f"{rel}: uses axum")
    if "--edges" in sys.argv:
        for mod in sorted(top):
            print(f"{mod} -> {', '.join(sorted(top[mod]))}")
    bad = False
    for comp in cycles(top):
        bad = True
        print("module cycle:", " ↔ ".join(comp))
    for comp in cycles(inner):
        bad = True
        print("file cycle:", " ↔ ".join(comp))
    for line in sorted(set(upward)):
        bad = True
        print("upward import:", line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
