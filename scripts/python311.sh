# Sourced by the scripts that build the peers' environments (.venv-ref, .venv-datatrove): those
# peers need CPython 3.11 (wheels the locked 3.10 stack cannot share). Prints its path, or fails.
find_python311() {
  local cand
  for cand in python3.11 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.11"*/bin/python \
              "$HOME/.pyenv/versions/3.11"*/bin/python python3; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && \
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  return 1
}
