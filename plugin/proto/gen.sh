#!/usr/bin/env bash
# Regenerates the Go code of glimpse.proto (run from anywhere, or through
# `go generate ./plugin/...`). Needs protoc (apt-get install -y
# protobuf-compiler) and the two Go generators at the versions the committed
# files were made with; they are installed into $GLIMPSE_CI_CACHE/bin
# (default $HOME/.cache/glimpse-ci/bin) when missing.
set -euo pipefail
cd "$(dirname "$0")"
BIN="${GLIMPSE_CI_CACHE:-$HOME/.cache/glimpse-ci}/bin"
mkdir -p "$BIN"
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
if ! "$BIN/protoc-gen-go" --version 2>/dev/null | grep -q "$PROTOC_GEN_GO_VERSION"; then
  GOBIN="$BIN" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if ! "$BIN/protoc-gen-go-grpc" --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}"; then
  GOBIN="$BIN" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi
OUT="${1:-.}"
PATH="$BIN:$PATH" protoc -I . \
  --go_out="$OUT" --go_opt=paths=source_relative \
  --go-grpc_out="$OUT" --go-grpc_opt=paths=source_relative \
  glimpse.proto
