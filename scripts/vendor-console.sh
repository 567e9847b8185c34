#!/usr/bin/env bash
# The console's two libraries, vendored at pinned versions into master-svc/assets/console/vendor/
# (the master embeds them and serves them itself, so /ui works without internet):
#   htm@3.1.1    preact/standalone.module.js: Preact, its hooks and htm tagged templates in one
#                ES module (13 KB, 5 KB gzipped): components without a build step
#   uplot@1.6.32 dist/uPlot.iife.min.js and dist/uPlot.min.css: the time-series charts
#
#   scripts/vendor-console.sh          vendor the versions below (to upgrade: change them and
#                                      their INTEGRITY, the registry's sha512 of the tarball)
#   scripts/vendor-console.sh --check  the vendored files are those versions', byte for byte (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=master-svc/assets/console/vendor
# package@version  integrity  licence  file-in-package:vendored-name ...
PACKAGES=(
  "htm@3.1.1 sha512-983Vyg8NwUE7JkZ6NmOqpCZ+sh1bKv2iYTlUkzlWmA5JD2acKoxd4KVxbMmxX/85mtfdnDmTFoNKcg5DGAvxNQ== Apache-2.0 preact/standalone.module.js:preact-htm.js LICENSE:LICENSE.htm"
  "uplot@1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw== MIT dist/uPlot.iife.min.js:uPlot.min.js dist/uPlot.min.css:uPlot.min.css LICENSE:LICENSE.uplot"
)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0
for entry in "${PACKAGES[@]}"; do
  read -r spec integrity licence rest <<< "$entry"
  read -r -a files <<< "$rest"
  name=${spec%@*}
  version=${spec#*@}
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && npm pack --silent "$spec" > /dev/null)
  tarball="$WORK/$name/$name-$version.tgz"
  actual=sha512-$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
  [ "$actual" = "$integrity" ] || { echo "$spec: tarball integrity $actual, expected $integrity" >&2; exit 1; }
  tar -xzf "$tarball" -C "$WORK/$name"
  [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"])' "$WORK/$name/package/package.json")" = "$licence" ] \
    || { echo "$spec: the package's licence is no longer $licence: review it" >&2; exit 1; }
  for pair in "${files[@]}"; do
    from=$WORK/$name/package/${pair%%:*}
    to=$DEST/${pair#*:}
    if [ "${1:-}" = --check ]; then
      cmp -s "$from" "$to" || { echo "$to is not $spec's ${pair%%:*}" >&2; status=1; }
    else
      cp "$from" "$to"
    fi
  done
done
if [ "${1:-}" != --check ]; then
  echo "vendored the console's libraries into $DEST"
elif [ $status = 0 ]; then
  echo "vendored console libraries: ${PACKAGES[*]%% *}, unchanged"
fi
exit $status
