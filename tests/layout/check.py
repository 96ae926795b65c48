"""The folders are the architecture: fails when a file of one part includes
a header of another part. core/ includes only core/; a part (proxy, cache,
monitor, web, ...) includes core/ and itself; a -t.h header includes only
other -t.h headers. Exceptions, if any, are the
lines of docs/ARCHITECTURE.md's "Exceptions to the boundaries" section of
the form "- `FILE` includes `HEADER`: why". Writes "passed failed" to
--result and prints every violation with its file and line."""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_PARTS = {"tests", "build", "docs", "images", ".git", ".ci", "node_modules"}
GENERATED = {"version.h"}		# made by the Makefile into build/gen
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def exceptions():
    out, on = set(), False
    with open(os.path.join(ROOT, "docs", "ARCHITECTURE.md")) as f:
        for line in f:
            if line.startswith("#"):
                on = "exceptions to the boundaries" in line.lower()
                continue
            m = re.match(r"-\s+`([^`]+)`\s+includes\s+`([^`]+)`:\s*\S", line)
            if on and m:
                out.add((m.group(1), m.group(2)))
    return out


def sources():
    for part in sorted(os.listdir(ROOT)):
        d = os.path.join(ROOT, part)
        if part in NOT_PARTS or part.startswith(".") or not os.path.isdir(d):
            continue
        for dirpath, dirs, files in os.walk(d):
            dirs[:] = [x for x in dirs if x not in NOT_PARTS]
            for fn in sorted(files):
                if fn.endswith((".c", ".h")):
                    yield part, os.path.relpath(os.path.join(dirpath, fn), ROOT)


def violations(allowed):
    parts = {p for p, _ in sources()}
    for part, path in sources():
        with open(os.path.join(ROOT, path), errors="replace") as f:
            for no, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                if inc in GENERATED:
                    continue
                owner = inc.split("/")[0] if "/" in inc else part
                if owner not in parts and "/" in inc:
                    yield path, no, inc, "no such part: %s" % owner
                    continue
                if path.endswith("-t.h") and not inc.endswith("-t.h") and (path, inc) not in allowed:
                    yield path, no, inc, "a -t.h header includes only other -t.h headers"
                    continue
                if owner == part or owner == "core" or (path, inc) in allowed:
                    continue
                yield path, no, inc, "%s/ may include only core/ and %s/" % (part, part)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--result")
    a = ap.parse_args()
    bad = list(violations(exceptions()))
    for path, no, inc, why in bad:
        print("%s:%d: includes \"%s\": %s" % (path, no, inc, why))
    print("layout: %d file%s checked, %d violation%s" % (
        len(list(sources())), "" if len(list(sources())) == 1 else "s", len(bad), "" if len(bad) == 1 else "s"))
    if a.result:
        os.makedirs(os.path.dirname(a.result), exist_ok=True)
        with open(a.result, "w") as f:
            f.write("%d %d\n" % (0 if bad else 1, 1 if bad else 0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
