#!/usr/bin/env python3
"""Soak test of the std echo example: many connect-send-close cycles.

Starts the echo server binary given on the command line on a free port,
then runs CYCLES connect-send-close cycles twice:

* readers: each client sends a message, reads the whole echo back (checked
  byte for byte), then closes;
* non-readers: each client sends a message and closes at once without
  reading (the echo meets a closed socket).

Passes when no connect failed, no reply byte was lost or wrong, the
server's `closed ...` lines account for every connection with `rx=` equal
to what its client sent (and `tx=` too for readers), and the server's
open file descriptors (/proc/PID/fd) are back at their idle count once the
lingering closes are over. Prints one summary line; exit status 0 = pass.

Usage: soak.py ECHO_BINARY [--cycles N] [--threads N]
"""

import argparse
import collections
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Clients connect from 127.0.0.2 .. 127.0.0.(1 + SOURCES): each source
# address has its own ephemeral ports, so connections closed moments ago
# (TIME_WAIT on the client side) never run the ports out.
SOURCES = 8
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MAX_MESSAGE = 1024
TIMEOUT = 5.0
CLOSED_RE = re.compile(
    rb"^closed id=(\d+) peer=(\S+) rx=(\d+) tx=(\d+) reason=(\w+)$"
)


def fail(msg):
    print(f"soak: FAILED: {msg}", flush=True)
    sys.exit(1)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Phase:
    """One run of `cycles` connections, shared by the client threads."""

    def __init__(self, name, port, cycles, threads, read_reply):
        self.name = name
        self.port = port
        self.read_reply = read_reply
        self.lock = threading.Lock()
        self.next = 0
        self.cycles = cycles
        self.threads = threads
        self.sent = collections.Counter()  # (peer, bytes) -> connections
        self.failed_connects = 0
        self.lost = 0  # reply bytes missing or wrong
        self.errors = []
        self.pattern = random.Random(7).randbytes(2 * MAX_MESSAGE)

    def take(self):
        with self.lock:
            if self.next >= self.cycles:
                return None
            self.next += 1
            return self.next - 1

    def client(self, source):
        sent = collections.Counter()
        failed = lost = 0
        errors = []
        while (i := self.take()) is not None:
            size = 1 + (i * 7919) % MAX_MESSAGE
            start = (i * 131) % MAX_MESSAGE
            msg = self.pattern[start:start + size]
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((source, 0))
                try:
                    s.connect(("127.0.0.1", self.port))
                except OSError as e:
                    failed += 1
                    errors.append(f"connect #{i}: {e}")
                    continue
                host, port = s.getsockname()
                s.sendall(msg)
                sent[(f"{host}:{port}", size)] += 1
                if self.read_reply:
                    got = bytearray()
                    try:
                        while len(got) < size:
                            chunk = s.recv(size - len(got))
                            if not chunk:
                                break
                            got += chunk
                    except OSError as e:
                        errors.append(f"reply #{i}: {e}")
                    if got != msg:
                        good = len(got) if msg.startswith(bytes(got)) else 0
                        lost += size - good
                        errors.append(
                            f"reply #{i}: {len(got)} of {size} bytes, "
                            f"{'a prefix' if good else 'different'}"
                        )
            except OSError as e:
                errors.append(f"cycle #{i}: {e}")
            finally:
                s.close()
        with self.lock:
            self.sent.update(sent)
            self.failed_connects += failed
            self.lost += lost
            self.errors.extend(errors[:5])

    def run(self):
        t0 = time.monotonic()
        workers = [
            threading.Thread(
                target=self.client, args=(f"127.0.0.{2 + k % SOURCES}",)
            )
            for k in range(self.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.monotonic() - t0


def closed_lines(path):
    with open(path, "rb") as f:
        for line in f:
            m = CLOSED_RE.match(line.rstrip(b"\n"))
            if m:
                yield m


def check_closed(phase, log, skip, expected):
    """Waits for the phase's `closed` lines (after the first `skip`) and
    compares them with what the clients sent. Returns the reasons seen and
    the number of lines."""
    deadline = time.monotonic() + 30
    while True:
        lines = list(closed_lines(log))[skip:]
        if len(lines) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if len(lines) != expected:
        phase.errors.append(f"{len(lines)} closed lines for {expected} completed cycles")
    rx = collections.Counter()
    reasons = collections.Counter()
    for m in lines:
        peer, bytes_in, bytes_out = m.group(2).decode(), int(m.group(3)), int(m.group(4))
        rx[(peer, bytes_in)] += 1
        reasons[m.group(5).decode()] += 1
        if phase.read_reply and bytes_out != bytes_in:
            phase.lost += bytes_in - bytes_out
            phase.errors.append(f"{peer}: rx={bytes_in} tx={bytes_out}")
    if rx != phase.sent:
        missing = phase.sent - rx
        extra = rx - phase.sent
        phase.lost += sum(size * n for (_, size), n in missing.items())
        phase.errors.append(
            f"closed lines differ from what was sent: "
            f"{sum(missing.values())} unmatched sends (e.g. {list(missing)[:3]}), "
            f"{sum(extra.values())} unmatched lines (e.g. {list(extra)[:3]})"
        )
    return reasons, len(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("echo")
    ap.add_argument("--cycles", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    log = tempfile.NamedTemporaryFile(prefix="soak-echo-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [args.echo, "--listen", "127.0.0.1:0", "--max-connections", "64"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            if server.poll() is not None:
                fail(f"the echo server exited with {server.returncode}")
            with open(log.name, "rb") as f:
                m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                port = int(m.group(1))
            else:
                time.sleep(0.05)
        if port is None:
            fail("no `listening on ADDR` line within 30 s")
        idle_fds = fd_count(server.pid)

        started = time.monotonic()
        results = []
        seen = 0
        for name, read_reply in (("readers", True), ("non-readers", False)):
            phase = Phase(name, port, args.cycles, args.threads, read_reply)
            secs = phase.run()
            made = sum(phase.sent.values())
            reasons, lines = check_closed(phase, log.name, seen, made)
            seen += lines
            results.append((phase, secs, reasons))

        # Lingering closes end within the backend's lingering_close time.
        deadline = time.monotonic() + 15
        while (fds := fd_count(server.pid)) > idle_fds and time.monotonic() < deadline:
            time.sleep(0.2)
        total = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    ok = fds == idle_fds
    parts = []
    for phase, secs, reasons in results:
        made = sum(phase.sent.values())
        ok = ok and phase.failed_connects == 0 and phase.lost == 0 and not phase.errors
        ok = ok and made == args.cycles
        reasons_s = ",".join(f"{r}:{n}" for r, n in sorted(reasons.items()))
        parts.append(
            f"{phase.name} {made}/{args.cycles} cycles in {secs:.1f}s "
            f"({made / secs:.0f}/s) failed_connects={phase.failed_connects} "
            f"bytes_lost={phase.lost} reasons={reasons_s}"
        )
        for e in phase.errors[:10]:
            print(f"soak: {phase.name}: {e}", flush=True)
    verdict = "PASS" if ok else "FAILED"
    print(
        f"soak: {verdict}: " + "; ".join(parts)
        + f"; server fds idle={idle_fds} end={fds}; total {total:.1f}s",
        flush=True,
    )
    if ok:
        os.unlink(log.name)
    else:
        print(f"soak: server log kept at {log.name}", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
