#!/usr/bin/env bash
# The fuzz stage: lints the fuzz crate, replays its seed corpus and every
# past crash (a plain `cargo test`), then runs each cargo-fuzz target for a
# bounded time on the nightly toolchain and fails on any crash.
#
#   ci/fuzz.sh                 every target, a fixed number of runs each
#                              (about a minute on the build machine), at
#                              most 120 s
#   FUZZ_SECONDS=10 ci/fuzz.sh a shorter time bound
#   FUZZ_SEED=0 ci/fuzz.sh     a random seed and no run limit: an exploring
#                              run (CI's is seeded, so that a green run here
#                              is a green run there; explore with this)
#   ci/fuzz.sh pool            one target
#
# A crash leaves its input in fuzz/artifacts/TARGET/ (libFuzzer prints it
# in base64 too). Reproduce it with `cargo +nightly fuzz run TARGET FILE`;
# once fixed, copy it to fuzz/regressions/TARGET/ so that `cargo test` in
# fuzz/ replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-120}"
SEED="${FUZZ_SEED:-1}"
# Runs per target for CI's seeded run (about a minute each on 2 cores).
runs_for() {
    if [ "$SEED" = 0 ]; then
        echo -1
        return
    fi
    case "$1" in
        framing) echo 2000000 ;;
        pool) echo 100000 ;;
        server) echo 120000 ;;
        *) echo -1 ;;
    esac
}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(framing pool server)
fi

current=""
stage() {
    current="$1"
    printf '\n==== fuzz: %s ====\n' "$1"
}
trap 'status=$?; if [ $status -ne 0 ]; then printf "\n==== FAILED in fuzz stage: %s (exit %s) ====\n" "$current" "$status"; fi' EXIT

stage setup
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal || {
        echo "ERROR: the nightly toolchain (needed by cargo-fuzz) cannot be installed" >&2
        exit 1
    }
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || {
        echo "ERROR: cargo-fuzz cannot be installed" >&2
        exit 1
    }
fi
rustup run nightly rustc --version
cargo fuzz --version

stage lint
cargo fmt -- --check
cargo clippy --all-targets --locked -- -D warnings

stage replay
# The seed corpus and every input that ever crashed, without libFuzzer.
cargo test --locked

stage build
# No sanitizer: the code under test is safe Rust (the core denies
# `unsafe`), so AddressSanitizer would find nothing Rust's own checks do
# not, at half the executions. Debug assertions and overflow checks are on.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}"

summary=()
for target in "${TARGETS[@]}"; do
    stage "run $target (seed $SEED, at most ${SECONDS_PER_TARGET}s)"
    # New inputs go to a scratch directory; the committed seeds are read only.
    scratch="$(mktemp -d)"
    log="$(mktemp)"
    set +e
    cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -seed="$SEED" -runs="$(runs_for "$target")" \
        -max_len=4096 -timeout=20 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)"
    if [ $status -ne 0 ] || [ -z "$runs" ]; then
        tail -n 60 "$log"
        echo "ERROR: fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^#[0-9]+.*DONE' "$log" | tail -1 || true
    echo "$target: $runs, no crash"
    summary+=("$target: $runs")
    rm -rf "$scratch" "$log"
done

stage summary
printf 'fuzz: no crash; %s\n' "$(IFS=';'; echo "${summary[*]}" | sed 's/;/; /g')"
