#!/usr/bin/env bash
# Builds the function for deployment exactly as README's "Deploy" section says — `sam build` with
# the beta switch that SAM's rust-cargolambda builder needs, and no CARGO_TARGET_DIR in the
# environment (SAM copies the bootstrap from ./target) — offline, with the pinned SAM CLI and
# cargo-lambda (which brings zig for the arm64 cross build). Prints the time and the bootstrap's
# size. A full arm64 release build: minutes, so not part of every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(bash infra/venv.sh):$PATH"
export PATH SAM_CLI_TELEMETRY=0
rustup target add aarch64-unknown-linux-gnu >/dev/null
started=$(date +%s)
env -u CARGO_TARGET_DIR sam build --beta-features --template infra/template.yaml
seconds=$(( $(date +%s) - started ))
bootstrap=.aws-sam/build/GenerateFunction/bootstrap
[ -x "$bootstrap" ] || { echo "no bootstrap at $bootstrap"; exit 1; }
file "$bootstrap" 2>/dev/null || true
echo "sam build: ${seconds}s; bootstrap $(stat -c %s "$bootstrap") bytes ($(du -h "$bootstrap" | cut -f1))"
