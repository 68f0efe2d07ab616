#!/usr/bin/env bash
# Build STAC Browser (npm @radiantearth/stac-browser) for the local STAC stack (`eopack stac up`
# serves it at <assets>/browser/). Called by `make setup`; idempotent; needs node and npm.
#
# The npm package is STAC Browser's source; its own build (vue-cli, `npm run build`) makes the
# static site. We build it with:
#   - dependencies pinned by scripts/stac-browser/package-lock.json (`npm ci`; made by `npm install`
#     after the ol-stac pin below, as no lock file ships in the npm package),
#   - pathPrefix /browser/ (its place on the asset server),
#   - no basemap (scripts/stac-browser/basemaps.config.js): nothing is fetched from a CDN at page load,
#   - the runtime config script enabled: the stack writes config.js (catalogUrl = its API) at `up`.
# Output: .cache/stac-browser/<version>/dist (or $EOPACK_STAC_BROWSER_CACHE/<version>/dist).
set -euo pipefail
VERSION=4.0.1
here=$(cd "$(dirname "$0")" && pwd)
cache=${EOPACK_STAC_BROWSER_CACHE:-$(dirname "$here")/.cache/stac-browser}
dest=$cache/$VERSION
if [ -f "$dest/dist/index.html" ] && [ "$dest/dist/.built-from" -nt "$here/stac-browser.sh" ] &&
   [ "$dest/dist/.built-from" -nt "$here/stac-browser/package-lock.json" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "stac-browser: npm not found; STAC Browser is not built (eopack stac up runs without it)" >&2
  exit 0
fi
echo "stac-browser: building @radiantearth/stac-browser $VERSION into $dest/dist (npm ci + vue-cli build, ~3 min)"
src=$dest/src
rm -rf "$src" "$dest/dist.new"
mkdir -p "$src"
(cd "$dest" && npm pack --silent "@radiantearth/stac-browser@$VERSION" >/dev/null)
tar -xzf "$dest/radiantearth-stac-browser-$VERSION.tgz" -C "$src" --strip-components=1
# ol-stac after 1.4 needs a newer OpenLayers than the ~10.6 STAC Browser 4.0.1 pins (the build fails)
(cd "$src" && npm pkg set dependencies.ol-stac=1.4.0)
cp "$here/stac-browser/package-lock.json" "$here/stac-browser/basemaps.config.js" "$src/"
# index.html ships the runtime-config <script> commented out; enable it at our path prefix.
sed -i 's#<!-- <script defer="defer" src="/config.js"></script> -->#<script defer="defer" src="/browser/config.js"></script>#' \
  "$src/public/index.html"
grep -q 'src="/browser/config.js"' "$src/public/index.html" || { echo "stac-browser: index.html changed upstream" >&2; exit 1; }
(
  cd "$src"
  npm ci --no-audit --no-fund --loglevel=error
  npm run build --silent -- --pathPrefix=/browser/ --historyMode=history --catalogTitle="eopack local STAC" \
    --allowExternalAccess=false >"$dest/build.log" 2>&1 || { tail -30 "$dest/build.log" >&2; exit 1; }
)
rm -f "$src/dist/config.js"  # the stack serves its own
mv "$src/dist" "$dest/dist.new"
rm -rf "$dest/dist" && mv "$dest/dist.new" "$dest/dist"
echo "@radiantearth/stac-browser@$VERSION" >"$dest/dist/.built-from"
rm -rf "$src" "$dest/radiantearth-stac-browser-$VERSION.tgz"  # node_modules: ~400 MB
echo "stac-browser: built $dest/dist"
