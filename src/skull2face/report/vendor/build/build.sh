#!/usr/bin/env bash
# Rebuild ../three-viewer.min.js and ../LICENSE-three.txt from the npm registry (development time
# only; the package ships the output). Needs node and npm. Versions are pinned in package.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/entry.js" "$work/"
cd "$work"
npm install --no-audit --no-fund --silent
version="$(node -p 'JSON.parse(require("fs").readFileSync("node_modules/three/package.json")).version')"
{
  printf '/*! three.js %s, MIT License, Copyright 2010-2026 three.js authors; see LICENSE-three.txt.\n' "$version"
  printf '    Bundled for skull2face by report/vendor/build/build.sh (esbuild %s, IIFE, minified). */\n' \
    "$(npx esbuild --version)"
  npx esbuild entry.js --bundle --minify --format=iife --target=es2020 --legal-comments=none --log-level=warning
} > "$here/../three-viewer.min.js"
cp node_modules/three/LICENSE "$here/../LICENSE-three.txt"
echo "$version" > "$here/../THREE_VERSION"
ls -l "$here/../three-viewer.min.js"
