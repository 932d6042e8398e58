#!/usr/bin/env bash
# Creates .venv-datatrove: Python 3.11 with datatrove 0.10.1, the reference implementation that
# benchmarks/refine_vs_datatrove.py compares rw-tf's refinement filters against. Kept apart from
# .venv because datatrove needs numpy >= 2 and TFX 1.16 pins numpy 1.26. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RW_TF_DATATROVE_VENV:-$root/.venv-datatrove}"
stamp="$venv/.rw_tf_datatrove.sha256"
want="$(sha256sum "$root/requirements/datatrove.txt" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
source "$root/scripts/python311.sh"
py="$(find_python311)" || py=""
[ -n "$py" ] || { echo "error: the datatrove environment needs CPython 3.11" >&2; exit 1; }
echo ">> creating $venv with $py (datatrove 0.10.1)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/datatrove.txt" >&2
echo "$want" > "$stamp"
