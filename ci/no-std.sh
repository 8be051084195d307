#!/usr/bin/env bash
# The no_std stage: every crate that claims `no_std` is built for two
# bare-metal targets without `std` (thumbv7em-none-eabihf: Cortex-M4F;
# riscv32imac-unknown-none-elf: the ESP32-C3's instruction set class), with
# each logging choice. Anything that pulls in `std` fails here.
#
# - ci/no-std-check is a `no_main` binary: it links, so neither `std` nor an
#   allocator can hide in tcpool-core.
# - The libraries are built as rlibs (`cargo build --lib`): code is generated
#   for the target, nothing is linked. That is all tcpool-lwip can do here:
#   its lwIP C symbols (`lwip_socket`, ..., `__errno`) are resolved only when
#   a firmware links it against an lwIP build, which bare metal does not
#   have in this repository.
#
# It installs the targets itself (rustup) and fails loudly if it cannot.
# Usage: ci/no-std.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(thumbv7em-none-eabihf riscv32imac-unknown-none-elf)

fail() {
    printf 'ERROR (ci/no-std.sh): %s\n' "$*" >&2
    exit 1
}

run() {
    printf '+ %s\n' "$*"
    "$@"
}

command -v rustup >/dev/null 2>&1 || fail "rustup is needed to install ${TARGETS[*]}"
installed=$(rustup target list --installed)
for target in "${TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        rustup target add "$target" || fail "cannot install the $target target"
    fi
done

for target in "${TARGETS[@]}"; do
    printf '\n== %s ==\n' "$target"
    # Links: no std, no allocator.
    run cargo build --locked -p no-std-check --release --target "$target"
    # The core, with each logger.
    run cargo build --locked -p tcpool-core --lib --target "$target"
    run cargo build --locked -p tcpool-core --lib --features log --target "$target"
    run cargo build --locked -p tcpool-core --lib --features defmt --target "$target"
    # The firmware backends, with each logger.
    run cargo build --locked -p tcpool-smoltcp --lib --target "$target"
    run cargo build --locked -p tcpool-smoltcp --lib --features log,ipv6 --target "$target"
    run cargo build --locked -p tcpool-smoltcp --lib --features defmt --target "$target"
    run cargo build --locked -p tcpool-lwip --lib --target "$target"
    run cargo build --locked -p tcpool-lwip --lib --features log --target "$target"
    run cargo build --locked -p tcpool-lwip --lib --features defmt --target "$target"
    run cargo build --locked -p tcpool-embassy --lib --target "$target"
    run cargo build --locked -p tcpool-embassy --lib --features log --target "$target"
    run cargo build --locked -p tcpool-embassy --lib --features defmt --target "$target"
    # The facade with both firmware backends, and the ESP-IDF example's server.
    run cargo build --locked -p tcpool --lib --no-default-features --features smoltcp,lwip --target "$target"
    run cargo build --locked -p tcpool --lib --no-default-features --features smoltcp,lwip,defmt --target "$target"
    run cargo build --locked -p tcpool-esp-idf-echo-server --lib --target "$target"
done

printf '\n== no_std stage passed ==\n'
