#!/usr/bin/env bash
# The viewer of the master's /docs page: the standalone bundle of the npm package
# @scalar/api-reference, vendored at a pinned version into master-svc/assets/scalar/ (gzipped;
# the master embeds it and serves it itself, so /docs works without internet).
#
#   scripts/vendor-scalar.sh          vendor VERSION (to upgrade: change VERSION and INTEGRITY)
#   scripts/vendor-scalar.sh --check  the vendored bundle is VERSION's, byte for byte (CI)
#
# INTEGRITY is the registry's sha512 of the package tarball; npm checks the download against
# it, and so does this script, so a re-published or tampered tarball is refused.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.76.0
INTEGRITY=sha512-pjqwnzmA9YK3ZX+IZSICMsywm4qI6HLSngR2py9H6TvFApHHuJjkTAd+gFJfnqJDzJuro8k7ji6JCtJ2U+Byng==
DEST=master-svc/assets/scalar

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "@scalar/api-reference@$VERSION" > /dev/null)
TARBALL="$WORK/scalar-api-reference-$VERSION.tgz"
actual=sha512-$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$TARBALL")
[ "$actual" = "$INTEGRITY" ] || { echo "tarball integrity $actual, expected $INTEGRITY" >&2; exit 1; }
tar -xzf "$TARBALL" -C "$WORK" package/dist/browser/standalone.js package/package.json
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"])' "$WORK/package/package.json")" = MIT ] \
  || { echo "the package's licence is no longer MIT: review $DEST/LICENSE" >&2; exit 1; }

if [ "${1:-}" = --check ]; then
  [ "$(cat "$DEST/VERSION")" = "$VERSION" ] || { echo "$DEST/VERSION is not $VERSION" >&2; exit 1; }
  gzip -dc "$DEST/standalone.js.gz" | cmp - "$WORK/package/dist/browser/standalone.js" \
    || { echo "$DEST/standalone.js.gz is not @scalar/api-reference@$VERSION's bundle" >&2; exit 1; }
  echo "vendored Scalar viewer: @scalar/api-reference@$VERSION, unchanged"
else
  gzip -9 -n -c "$WORK/package/dist/browser/standalone.js" > "$DEST/standalone.js.gz"
  echo "$VERSION" > "$DEST/VERSION"
  echo "vendored @scalar/api-reference@$VERSION into $DEST"
fi
