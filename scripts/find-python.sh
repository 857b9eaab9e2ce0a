#!/usr/bin/env bash
# Prints the path of a Python 3.10 (or 3.9) interpreter; TFX 1.16 needs >=3.9,<3.11.
# Looks on PATH first (pyenv's shim resolves through the repo's .python-version),
# then in pyenv's own versions folder.
set -u
works() { "$1" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 11) else 1)' >/dev/null 2>&1; }
for name in python3.10 python3.9; do
  if path=$(command -v "$name" 2>/dev/null) && works "$path"; then
    "$path" -c 'import sys; print(sys.executable)'; exit 0
  fi
done
if root=$(pyenv root 2>/dev/null) || root="${PYENV_ROOT:-$HOME/.pyenv}"; then
  for candidate in $(ls -d "$root"/versions/3.10*/bin/python3 "$root"/versions/3.9*/bin/python3 2>/dev/null | sort -rV); do
    if works "$candidate"; then echo "$candidate"; exit 0; fi
  done
fi
echo "error: no Python 3.9 or 3.10 found (TFX 1.16 needs Python >=3.9,<3.11)." >&2
echo "Install one, e.g. 'pyenv install 3.10', and run make again." >&2
exit 1
