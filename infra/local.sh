#!/usr/bin/env bash
# Runs uploads through the Lambda locally: moto (S3 + SQS), the PicWish emulator and
# `cargo lambda watch`, all on 127.0.0.1. See infra/local.py for the options.
set -euo pipefail
cd "$(dirname "$0")/.."
# The quick start's `cargo run` builds into ./target: the suite reuses what it built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
PATH="$(bash infra/venv.sh):$PATH"
export PATH
exec python infra/local.py "$@"
