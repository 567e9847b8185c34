#!/usr/bin/env python3
"""Checks a DOM that headless Chromium dumped from /docs: the page as a person sees it (scripts
and styles left out, so the document embedded in the page does not count) names the API's
groups and operations."""
import json
import re
import sys

# A few operations of each kind a reader looks for first; the viewer lists every operation of
# the first group and the name of every group.
EXPECTED = [
    "Leasehold",
    "List tasks",
    "Submit a task",
    "Get a task",
    "Cancel a task",
    "/tasks/{id}/retry",
    "leases",
    "queues",
    "probes",
]


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def main() -> int:
    with open(sys.argv[1]) as f:
        text = visible_text(f.read())
    missing = [e for e in EXPECTED if e not in text]
    if missing:
        print(f"/docs rendered without network lacks {missing}; it shows: {text[:500]!r}",
              file=sys.stderr)
        return 1
    print(f"/docs renders offline: {len(text)} characters of text, all of {len(EXPECTED)} "
          "expected names shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
