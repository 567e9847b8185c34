#!/usr/bin/env python3
"""Every metric the alert rules and the dashboard use is one the services export, so that neither
silently watches nothing after a rename.

    names_exist.py SCRAPE_FILE WORKER_METRICS_RS FILE...

SCRAPE_FILE is a live master's /metrics; the worker's names are read from its source (a worker's
series appear with its first task). FILEs are rule files (YAML) and dashboards (JSON)."""
import re
import sys

NAME = re.compile(r"\b((?:leasehold|process)_[a-z_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported(scrape_path: str, worker_source_path: str) -> set:
    names = set()
    with open(scrape_path) as scrape:
        for line in scrape:
            if line.strip() and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    with open(worker_source_path) as source:
        for name in re.findall(r'"(leasehold_worker_[a-z_]+)"', source.read()):
            names.add(name)
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def main() -> int:
    names = exported(sys.argv[1], sys.argv[2])
    unknown = {}
    for path in sys.argv[3:]:
        with open(path) as f:
            for used in set(NAME.findall(f.read())):
                if used not in names:
                    unknown.setdefault(path, []).append(used)
    for path, used in unknown.items():
        print(f"{path} uses metrics no service exports: {sorted(used)}", file=sys.stderr)
    if unknown:
        return 1
    print(f"every metric used by {len(sys.argv) - 3} files is exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
