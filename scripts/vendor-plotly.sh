#!/usr/bin/env bash
# Refresh the plotly.js partial bundle the HTML report embeds (src/wattwatch/report/VENDORED.md).
# Usage: bash scripts/vendor-plotly.sh 4.1.1   (needs npm; run by a developer, not at install time)
set -euo pipefail
VERSION="${1:?plotly.js version, e.g. 4.1.1}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/wattwatch/report"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "plotly.js-cartesian-dist-min@$VERSION" >/dev/null && tar xzf ./*.tgz)
gzip -9nc "$TMP/package/plotly-cartesian.min.js" > "$DEST/plotly-cartesian.min.js.gz"
cp "$TMP/package/LICENSE" "$DEST/PLOTLY-LICENSE"
echo "vendored plotly.js-cartesian-dist-min $VERSION into $DEST"
