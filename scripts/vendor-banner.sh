#!/usr/bin/env bash
# Rebuild the vendored consent-banner library from npm: vanilla-cookieconsent (MIT), its UMD build,
# its stylesheet and its licence, into the package data served with /privacy/consent.js.
# Usage: scripts/vendor-banner.sh [version]   (default: the version in the VERSION file)
set -euo pipefail
cd "$(dirname "$0")/.."
target=src/privacy_middleware/api/pages/static/vendor
version="${1:-$(cat "$target/VERSION")}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "vanilla-cookieconsent@${version}" >/dev/null && tar xzf vanilla-cookieconsent-*.tgz)
cp "$work/package/dist/cookieconsent.umd.js" "$target/cookieconsent.umd.js"
cp "$work/package/dist/cookieconsent.css" "$target/cookieconsent.css"
cp "$work/package/LICENSE" "$target/LICENSE"
node -e 'process.stdout.write(require(process.argv[1]).version)' "$work/package/package.json" > "$target/VERSION"
echo "vendored vanilla-cookieconsent $(cat "$target/VERSION") into $target"
