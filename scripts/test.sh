#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a private local stack
# (real Kafka broker + real sshd on loopback), runs every test of the
# workspace against it, a short fuzz run, and tears the stack down.
# Exit status is non-zero on any failure.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- <filter>     # cargo test arguments after --
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
# A stack of its own, so a demo stack left running is never disturbed.
export STACK_DIR=${TEST_STACK_DIR:-$REPO_DIR/.stack-test}

scripts/bootstrap.sh
trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
scripts/stack.sh up
eval "$(scripts/stack.sh env)"

started=$(date +%s)
if [[ ${1:-} == "--" ]]; then
  shift
  cargo test --workspace "$@"
else
  cargo test --workspace
  scripts/fuzz.sh short
fi
echo "test suite took $(( $(date +%s) - started )) s"
