#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks the gates (rustfmt,
# clippy with warnings as errors, rustdoc), starts a private local stack (real
# Kafka broker, real sshd and a real schema registry on loopback), runs every test of the workspace
# against it (the `integration` feature: without it the stack's tests are
# listed as ignored), a short fuzz run, and tears the stack down. The
# runtime image is built first (scripts/image.sh) for tests/image.rs.
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

# Gates: the code as written is the code as formatted, linted and documented.
cargo fmt --all --check
(cd fuzz && cargo fmt --all --check)
cargo clippy --workspace --all-targets --features integration -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# The runtime image tests/image.rs runs (its size is printed here).
scripts/image.sh

trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
scripts/stack.sh up --schema-registry
eval "$(scripts/stack.sh env)"

started=$(date +%s)
if [[ ${1:-} == "--" ]]; then
  shift
  cargo test --workspace --features integration "$@"
else
  cargo test --workspace --features integration
  scripts/fuzz.sh short
fi
echo "test suite took $(( $(date +%s) - started )) s"
