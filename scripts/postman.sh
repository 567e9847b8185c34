#!/usr/bin/env bash
# Regenerates the Postman collection postman/leasehold.postman_collection.json from openapi.yaml
# with portman (which converts it with openapi-to-postmanv2 and injects contract tests: status
# code, content type, JSON body, JSON schema, headers), configured by postman/portman-config.json:
# order of the requests, values carried from one to the next, content tests and variations.
#
#   scripts/postman.sh           regenerate the collection
#   scripts/postman.sh --check   fail if the committed collection is not what openapi.yaml gives
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$root/postman
out=$dir/leasehold.postman_collection.json

# The tools, at the versions postman/package-lock.json pins.
[ -x "$dir/node_modules/.bin/portman" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)

# Portman keeps scratch files in ./tmp of wherever it runs: run it in a directory of its own.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$dir/node_modules/.bin/portman" --local "$root/openapi.yaml" \
  --output "$work/collection.json" --collectionName Leasehold \
  --portmanConfigFile "$dir/portman-config.json" --postmanConfigFile "$dir/postman-config.json" \
  > "$work/portman.log" 2>&1) || { cat "$work/portman.log"; exit 1; }

# Portman gives every item and script a fresh random id; they are dropped so that the same
# openapi.yaml always gives the same file.
node -e '
  const fs = require("fs");
  const strip = (v) => Array.isArray(v) ? v.map(strip)
    : v && typeof v === "object"
      ? Object.fromEntries(Object.entries(v)
          .filter(([k]) => !["id", "_", "_postman_id"].includes(k))
          .map(([k, x]) => [k, strip(x)]))
      : v;
  const collection = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  fs.writeFileSync(process.argv[2], JSON.stringify(strip(collection), null, 2) + "\n");
' "$work/collection.json" "$work/stripped.json"

if [ "${1:-}" = --check ]; then
  if ! cmp -s "$out" "$work/stripped.json"; then
    diff -u "$out" "$work/stripped.json" | head -40 || true
    echo "postman/$(basename "$out") is stale: run scripts/postman.sh and commit it" >&2
    exit 1
  fi
  echo "postman/$(basename "$out") is current"
else
  mv "$work/stripped.json" "$out"
  echo "wrote postman/$(basename "$out")"
fi
