#!/usr/bin/env bash
# Idempotently install the n8n peer (webhook benchmark) into bench/.venvs/n8n (an npm prefix, git-ignored).
# Usage: bash bench/peers/setup_n8n.sh
# Env: N8N_VERSION (default 2.8.4: the newest n8n whose engines accept Node 20, which is what this machine
#      has; n8n >= 2.10 wants Node >= 22.16, latest wants >= 24), NODE (default: node on PATH).
# Needs: node >= 20.19 with its headers (nodesource's nodejs package ships /usr/include/node), npm, and a C/C++
# toolchain (gcc, g++, make, python3): sqlite3's prebuilt binary is fetched from outside the npm registry,
# which is not reachable here, so its install script falls back to building it with node-gyp from the
# local headers.
# Two substitutions keep the install inside the npm registry:
#   - xlsx: n8n-nodes-base pins a tarball from SheetJS's own CDN; the root package.json overrides it with
#     xlsx 0.18.5 from the registry (only the Spreadsheet File / Extract From File nodes use it, not the bench).
#   - node-gyp gets --nodedir=<node's prefix> so it never downloads headers.
# Run: .venv/bin/python bench/peers/n8n_bench.py [--quick]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$(cd "$HERE/.." && pwd)/.venvs/n8n"
N8N_VERSION="${N8N_VERSION:-2.8.4}"
NODE="${NODE:-node}"

command -v "$NODE" >/dev/null || { echo "node not found (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found" >&2; exit 1; }
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v "$NODE")")")")"
if [ ! -f "$NODE_PREFIX/include/node/node.h" ]; then
    echo "node headers not found under $NODE_PREFIX/include/node; sqlite3 cannot be built" >&2
    exit 1
fi

mkdir -p "$DIR"
cat >"$DIR/package.json.new" <<EOF
{
  "name": "loomwork-bench-n8n",
  "private": true,
  "dependencies": { "n8n": "$N8N_VERSION" },
  "overrides": { "xlsx": "0.18.5" }
}
EOF
if ! cmp -s "$DIR/package.json.new" "$DIR/package.json" 2>/dev/null; then
    mv "$DIR/package.json.new" "$DIR/package.json"
else
    rm "$DIR/package.json.new"
fi

installed="$("$NODE" -p "require('$DIR/node_modules/n8n/package.json').version" 2>/dev/null || true)"
if [ "$installed" = "$N8N_VERSION" ] && "$NODE" -e "require('$DIR/node_modules/sqlite3')" 2>/dev/null; then
    echo "== n8n $installed already installed in $DIR"
else
    echo "== npm install n8n@$N8N_VERSION into $DIR (about 2.5 GB, a few minutes)"
    (cd "$DIR" && npm_config_nodedir="$NODE_PREFIX" npm install --no-audit --no-fund --loglevel=error)
    # sqlite3 must have been built (its install script); fail loudly here rather than at benchmark time.
    "$NODE" -e "require('$DIR/node_modules/sqlite3')"
fi

echo "== installed versions"
echo "node: $("$NODE" --version), npm: $(npm --version)"
echo "n8n:  $("$NODE" -p "require('$DIR/node_modules/n8n/package.json').version")"
