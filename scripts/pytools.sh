#!/usr/bin/env bash
# The Python the tests check records with (fastavro, from PyPI), in a venv of
# the repository's own: created on first use, then reused. Prints its python.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO_DIR/.cache/test-venv
REQS=$REPO_DIR/tests/tools/requirements.txt
stamp=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ ! -f $VENV/.complete || $(<"$VENV/.complete") != "$stamp" ]]; then
  mkdir -p "$REPO_DIR/.cache"
  exec 8>"$VENV.lock"
  flock 8
  if [[ ! -f $VENV/.complete || $(<"$VENV/.complete") != "$stamp" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" >&2
    echo "$stamp" >"$VENV/.complete"
  fi
fi
echo "$VENV/bin/python"
