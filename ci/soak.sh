#!/usr/bin/env bash
# The soak stage: the std `echo` example, built in release mode, serves
# 100,000 connect-send-close cycles with clients that read the reply and
# 100,000 with clients that close without reading. Zero failed connects,
# zero bytes lost (readers check every reply byte; every `closed` line's
# rx= equals what its client sent), and the server's open file descriptors
# back at their idle count at the end. Prints one summary line.
#
#   ci/soak.sh                     100,000 cycles per kind
#   SOAK_CYCLES=10000 ci/soak.sh   a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /proc/self/fd ]; then
    echo "ERROR: the soak counts the server's descriptors in /proc, which is missing" >&2
    exit 1
fi
command -v python3 >/dev/null || {
    echo "ERROR: the soak's clients need python3" >&2
    exit 1
}

printf '\n==== soak: build ====\n'
cargo build --release --locked --example echo

printf '\n==== soak: run ====\n'
python3 ci/soak.py target/release/examples/echo --cycles "${SOAK_CYCLES:-100000}"
