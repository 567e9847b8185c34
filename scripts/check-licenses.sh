#!/usr/bin/env bash
# The licence texts are where the crates' licence expression says: every licence in the
# workspace's `license` (Cargo.toml) has its text at the root (LICENSE-MIT, LICENSE-APACHE), and
# every vendored asset under master-svc/assets/ carries its own LICENSE. The console
# (master-svc/assets/console/) is the project's own code, under the workspace's licence; the
# libraries it vendors carry theirs in its vendor/ (LICENSE.<package>).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import pathlib
import sys
import tomllib

TEXTS = {  # SPDX id -> (file, a line the text must hold)
    "MIT": ("LICENSE-MIT", "Permission is hereby granted, free of charge"),
    "Apache-2.0": ("LICENSE-APACHE", "Apache License"),
}
expression = tomllib.loads(pathlib.Path("Cargo.toml").read_text())["workspace"]["package"]["license"]
problems = []
for spdx in expression.replace("(", " ").replace(")", " ").split():
    if spdx in ("OR", "AND", "WITH"):
        continue
    if spdx not in TEXTS:
        problems.append(f"no known text for {spdx}")
        continue
    path, line = TEXTS[spdx]
    if not pathlib.Path(path).is_file() or line not in pathlib.Path(path).read_text():
        problems.append(f"{spdx}: {path} is missing or not that licence")
for asset in sorted(p for p in pathlib.Path("master-svc/assets").iterdir() if p.is_dir()):
    if asset.name == "console":
        vendored = pathlib.Path("scripts/vendor-console.sh").read_text()
        for package in ("htm", "uplot"):
            if f'"{package}@' not in vendored or not (asset / "vendor" / f"LICENSE.{package}").is_file():
                problems.append(f"{asset}/vendor has no LICENSE.{package}")
        continue
    if not (asset / "LICENSE").is_file():
        problems.append(f"{asset} has no LICENSE")
if problems:
    sys.exit("licences: " + "; ".join(problems))
print(f"licences: {expression} texts present; vendored assets carry theirs")
PY
