#!/usr/bin/env python3
"""Prints the address a master logged it listens on ("master listening", with --log-format json),
read from the log file given, or nothing while it has not yet. Scripts start a master on port 0
and read its address here, so they reach the master they started and no other."""
import json
import sys

with open(sys.argv[1]) as log:
    for line in log:
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "master listening":
            print(fields["addr"])
            break
