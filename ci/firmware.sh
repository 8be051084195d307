#!/usr/bin/env bash
# The firmware stage: builds the bare-metal echo firmware for riscv32
# (firmware/qemu-riscv32, release, opt-level "s"), checks from the ELF that
# its .data stays under 1 KiB, prints its footprint, and runs the black-box
# tests that boot it in QEMU through its runner. Installs what it needs
# (QEMU, riscv binutils, the Rust target). Called by ci/test.sh; runs alone
# as well: `bash ci/firmware.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

FW=firmware/qemu-riscv32
TARGET=riscv32imac-unknown-none-elf
ELF=$FW/target/$TARGET/release/tcpool-firmware
DATA_LIMIT=1024

missing=()
command -v qemu-system-riscv32 >/dev/null 2>&1 || missing+=(qemu-system-misc)
command -v riscv64-unknown-elf-size >/dev/null 2>&1 || missing+=(binutils-riscv64-unknown-elf)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ERROR: ${missing[*]} missing and not root: cannot install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

echo "-- firmware: fmt, clippy, build"
(
    cd "$FW"
    cargo fmt -- --check
    cargo clippy --release --locked -- -D warnings
    cargo build --release --locked
)

echo "-- firmware: .data under $DATA_LIMIT bytes"
data=$(riscv64-unknown-elf-size -A "$ELF" | awk '$1 == ".data" { print $2 }')
if [ -z "$data" ] || [ "$data" -ge "$DATA_LIMIT" ]; then
    echo "ERROR: the firmware's .data is ${data:-missing} bytes (limit $DATA_LIMIT):" >&2
    riscv64-unknown-elf-nm -C --size-sort --print-size "$ELF" | awk '$3 ~ /^[dD]$/' | tail -5 >&2
    exit 1
fi
echo ".data = $data bytes"

echo "-- firmware: footprint"
"$FW/footprint"

echo "-- firmware: black-box tests in QEMU"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --test blackbox_firmware -- --include-ignored 2>&1 | tee "$log"
# The tests fail on a panic or an early exit already; this catches one that
# a test did not look for (the runner reports both on stderr).
if grep -E "^panic: |the firmware panicked|powered off without being asked|the firmware did not stop" "$log"; then
    echo "ERROR: the firmware panicked or stopped unasked during the tests" >&2
    exit 1
fi
