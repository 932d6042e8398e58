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
py=""
for cand in python3.11 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.11"*/bin/python \
            "$HOME/.pyenv/versions/3.11"*/bin/python python3; do
  if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && \
     "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    py="$(command -v "$cand")"; break
  fi
done
[ -n "$py" ] || { echo "error: the datatrove environment needs CPython 3.11" >&2; exit 1; }
echo ">> creating $venv with $py (datatrove 0.10.1)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/datatrove.txt" >&2
echo "$want" > "$stamp"
