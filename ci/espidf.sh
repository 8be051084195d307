#!/usr/bin/env bash
# The ESP-IDF compile stage: the lwIP backend (`tcpool-lwip`), the facade
# (`tcpool --no-default-features --features lwip`) and the ESP-IDF example's
# server (`tcpool-esp-idf-echo-server`) are compiled for
# riscv32imc-esp-espidf (ESP32-C3) and linted with clippy -D warnings, with no
# logging, with `log` and with `defmt`; the server is also built (code
# generation) for each. Compiling for ESP-IDF evaluates the compile-time
# checks of crates/tcpool-lwip/src/sys/newlib.rs, which hold every newlib
# constant and layout the backend uses against the `libc` crate's `espidf`
# definitions.
#
# What this cannot do here: link or run a firmware. That needs ESP-IDF itself
# (esp-idf-sys downloads and builds it; it is not on the package
# registries), and Xtensa chips (ESP32, -S2, -S3) need the ESP Rust
# toolchain (espup): upstream rustc has no Xtensa backend.
#
# ESP-IDF targets are tier 3: no prebuilt standard library, so `core` is
# built from source (nightly, rust-src, -Zbuild-std=core). Nothing here
# needs `alloc` or `std`. It installs what it needs itself (rustup
# components) and fails loudly if it cannot. Its build products go to
# target/espidf, apart from the stable toolchain's.
#
# Usage: ci/espidf.sh   (ESPIDF_TOOLCHAIN overrides the toolchain: nightly)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=riscv32imc-esp-espidf
TOOLCHAIN="${ESPIDF_TOOLCHAIN:-nightly}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/espidf"

fail() {
    printf 'ERROR (ci/espidf.sh): %s\n' "$*" >&2
    exit 1
}

run() {
    printf '+ %s\n' "$*"
    "$@"
}

command -v rustup >/dev/null 2>&1 || fail "rustup is needed to install the $TOOLCHAIN toolchain"
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal --component rust-src,clippy ||
        fail "cannot install the $TOOLCHAIN toolchain"
fi
rustup component add rust-src clippy --toolchain "$TOOLCHAIN" ||
    fail "cannot install rust-src and clippy for $TOOLCHAIN"
rustup run "$TOOLCHAIN" rustc --print target-list | grep -qx "$TARGET" ||
    fail "$TOOLCHAIN's rustc does not know $TARGET"
rustup run "$TOOLCHAIN" rustc --version

# One cargo invocation for ESP-IDF: the toolchain, the target, core built
# from source, and the lock file as committed.
espidf() {
    local command="$1"
    shift
    run cargo "+$TOOLCHAIN" "$command" --target "$TARGET" -Zbuild-std=core --locked "$@"
}

for logging in none log defmt; do
    printf '\n== riscv32imc-esp-espidf, logging: %s ==\n' "$logging"
    features=()
    facade=lwip
    if [ "$logging" != none ]; then
        features=(--features "$logging")
        facade="lwip,$logging"
    fi
    espidf clippy -p tcpool-lwip --lib "${features[@]}" -- -D warnings
    espidf clippy -p tcpool --lib --no-default-features --features "$facade" -- -D warnings
    espidf clippy -p tcpool-esp-idf-echo-server --lib "${features[@]}" -- -D warnings
    espidf build -p tcpool-esp-idf-echo-server --lib --release "${features[@]}"
done

# The logging policy: `log` and `defmt` together are refused at compile time.
printf '\n== log and defmt together must not compile ==\n'
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if espidf check -p tcpool-lwip --lib --features log,defmt >"$log" 2>&1; then
    fail "tcpool-lwip compiled with both log and defmt"
fi
grep -q 'features `log` and `defmt` are mutually exclusive' "$log" ||
    { cat "$log" >&2; fail "log + defmt failed, but not with the logging policy's error"; }
echo "refused, as it should be"

printf '\n== ESP-IDF compile stage passed ==\n'
