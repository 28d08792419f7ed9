#!/usr/bin/env bash
# Runs uploads through the Lambda locally: moto (S3 + SQS), the PicWish emulator and
# `cargo lambda watch`, all on 127.0.0.1. See infra/local.py for the options.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/backdrop-target}"
PATH="$(bash infra/venv.sh):$PATH"
export PATH
exec python infra/local.py "$@"
