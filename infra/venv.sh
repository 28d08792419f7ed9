#!/usr/bin/env bash
# Creates (once) the Python tools the tests and the local pipeline use, in a venv outside the
# clone, and prints its bin folder. Pinned versions: moto (S3, SQS and DynamoDB server), cargo-lambda
# and cargo-zigbuild (with zig: dist/build's cross builds),
# cfn-lint, aws-sam-translator, the SAM CLI, and Playwright (its Python driver only: the browser
# tests drive the system's Chromium, `apt-get install chromium`, never a downloaded browser).
set -euo pipefail
venv="${BACKDROP_VENV:-$HOME/.cache/backdrop-venv}"
requirements=(
  "moto[server,s3,sqs,dynamodb]==5.2.5"
  "cargo-lambda==1.9.2"
  "cargo-zigbuild==0.24.1"
  "cfn-lint==1.58.0"
  "aws-sam-translator==1.115.0"
  "aws-sam-cli==1.170.0"
  "playwright==1.65.2"
)
stamp="$venv/.backdrop-requirements"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" >&2
  echo "${requirements[*]}" > "$stamp"
fi
echo "$venv/bin"
