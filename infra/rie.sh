#!/usr/bin/env bash
# Installs (once) AWS's Lambda Runtime Interface Emulator, pinned, from the Go module proxy into
# ~/.cache/backdrop-go/bin, and prints the binary's path. infra/local.py runs the deployment
# package's bootstrap under it (`--package`).
set -euo pipefail
version="v0.0.0-20261030222936-bef5c4ba774d"
bin="${BACKDROP_GO_BIN:-$HOME/.cache/backdrop-go/bin}"
stamp="$bin/.aws-lambda-rie-version"
if [ ! -x "$bin/aws-lambda-rie" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$version" ]; then
  mkdir -p "$bin"
  GOBIN="$bin" GOFLAGS=-modcacherw go install \
    "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$version" >&2
  echo "$version" > "$stamp"
fi
echo "$bin/aws-lambda-rie"
