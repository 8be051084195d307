#!/usr/bin/env bash
# The whole test suite, in named stages. This is the README's test command
# and what CI runs (.ci/run calls it). It installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

NO_STD_TARGET=thumbv7em-none-eabihf
current=""
stage() {
    current="$1"
    printf '\n==== stage: %s ====\n' "$1"
}
trap 'status=$?; if [ $status -ne 0 ]; then printf "\n==== FAILED in stage: %s (exit %s) ====\n" "$current" "$status"; fi' EXIT

stage setup
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
if ! rustup target list --installed | grep -qx "$NO_STD_TARGET"; then
    rustup target add "$NO_STD_TARGET" || {
        echo "ERROR: cannot install the $NO_STD_TARGET target needed for the no_std proof" >&2
        exit 1
    }
fi

# The smoltcp TAP test creates a network namespace and a TAP device with
# iproute2's `ip`, as root.
if ! command -v ip >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq iproute2) || echo "WARNING: could not install iproute2" >&2
    else
        echo "WARNING: iproute2 (ip) missing and not root: the smoltcp TAP test will say it did not run" >&2
    fi
fi

stage fmt
cargo fmt --all -- --check

stage clippy
# The no-std proof is linted for its bare-metal target: in a workspace-wide
# run, feature unification would give it a core built with `std`.
cargo clippy --workspace --exclude no-std-check --all-targets --locked -- -D warnings
cargo clippy -p no-std-check --target "$NO_STD_TARGET" --locked -- -D warnings
cargo clippy -p tcpool-core --features log --locked -- -D warnings
cargo clippy -p tcpool-core --features defmt --locked -- -D warnings

stage test
cargo test --locked

stage tap
# smoltcp against real Linux clients over a TAP device in a network
# namespace the test creates (root and /dev/net/tun; with CI=true it fails
# rather than skip when it cannot run), and the TAP echo example driven
# black-box the same way.
cargo clippy -p tcpool --features tap --examples --tests --locked -- -D warnings
cargo test -p tcpool-smoltcp --features tap --test tap --locked
cargo build --locked --features tap --example smoltcp_tap_echo
cargo test --locked --features tap --test blackbox_tap
# The async examples on embassy-net over a TAP device, driven the same way.
cargo clippy --locked -p tcpool --features embassy-tap --examples --tests -- -D warnings
cargo build --locked -p tcpool --features embassy-tap --examples
cargo test --locked -p tcpool --features embassy-tap --test blackbox_embassy_tap

stage firmware
# tcpool as bare-metal riscv32 firmware in QEMU: build, the .data limit, the
# footprint, and black-box tests through its runner (installs QEMU itself).
bash ci/firmware.sh

stage bench
# Every criterion benchmark builds (release) and runs each case once in test
# mode: the benchmarks stay runnable. Figures come from a full `cargo bench`
# (BENCHMARKS.md), never from CI.
cargo bench --locked -p tcpool --benches -- --test

stage soak
# Release echo example, 100,000 connect-send-close cycles with clients that
# read the reply and 100,000 with clients that do not: zero bytes lost, zero
# failed connects, the server's descriptors back at their idle count.
bash ci/soak.sh

stage fuzz
# cargo-fuzz targets (framing, the pure pool, the server over the
# fault-injecting stack) for about a minute each on nightly; any crash fails.
bash ci/fuzz.sh

stage doc
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

stage no-std
# Every no_std crate built for thumbv7em and riscv32imac (see the script).
ci/no-std.sh

stage espidf
# The lwIP backend, the facade and the ESP-IDF example's server compiled and
# linted for riscv32imc-esp-espidf (nightly, -Zbuild-std=core; see the script).
ci/espidf.sh

printf '\n==== all stages passed ====\n'
