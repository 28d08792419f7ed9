#!/usr/bin/env python3
"""The CLI at catalog scale: `backdrop generate` over folders of 1,000, 10,000 and 100,000 inputs
against the emulator binary with no rate limit and 100 ms tasks, printing per size the wall time
per input, the journal's bytes written per input (its file grows by one line per change), the
journal's size at the end and the peak RSS of `backdrop` — so that a cost growing with the
catalog shows as a number growing down the table. Then the same folder run again (every input
already done: the resume path) and a run stopped with SIGINT halfway and resumed.

    cargo build --release -p backdrop-cli -p backdrop-emulator
    python3 infra/scale_bench.py                     # 1k, 10k and 100k: about half an hour
    python3 infra/scale_bench.py --sizes 1000,10000  # a few minutes

The inputs are hard links to one 256x256 transparent PNG (each a distinct input: its output name
is part of its key; a copy per 50,000 links). Uses --batch 1, --no-report (the contact sheet is measured apart), and
--qps 1000 on a client whose emulator grants any rate: the run is bound by the machine, not by a
key.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def product_png(side=256):
    """A transparent square with an opaque disc: a valid input of the service's smallest size."""
    rows = []
    r2 = (side * 0.35) ** 2
    for y in range(side):
        row = bytearray(b"\0")
        for x in range(side):
            inside = (x - side / 2) ** 2 + (y - side / 2) ** 2 < r2
            row += bytes((200, 60, 40, 255)) if inside else bytes(4)
        rows.append(bytes(row))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def start_emulator(binary):
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1:0", "--qps", "0", "--processing-ms", "100",
         "--queue-ms", "0", "--prepare-ms", "0", "--seed", "1"],
        stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        process.kill()
        sys.exit(f"the emulator did not start: {line!r}")
    return process, match.group(1)


def run_cli(cli, args, env, interrupt_after=None):
    """Runs the CLI under /usr/bin/time -v; returns (exit code, seconds, peak RSS KiB)."""
    command = ["/usr/bin/time", "-v", cli] + args
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    if interrupt_after is not None:
        try:
            process.wait(timeout=interrupt_after)
        except subprocess.TimeoutExpired:
            # SIGINT to the CLI itself (time forwards nothing): the child of /usr/bin/time.
            children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                      text=True).stdout.split()
            for child in children:
                os.kill(int(child), signal.SIGINT)
    _, stderr = process.communicate()
    seconds = time.monotonic() - started
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return process.returncode, seconds, int(rss.group(1)) if rss else -1, stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release"))
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--no-resume", action="store_true",
                        help="skip the run stopped halfway and resumed")
    args = parser.parse_args()
    cli = os.path.join(args.bin, "backdrop")
    emulator_bin = os.path.join(args.bin, "backdrop-emulator")
    for binary in (cli, emulator_bin):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing: cargo build --release -p backdrop-cli "
                     "-p backdrop-emulator")
    work = args.dir or tempfile.mkdtemp(prefix="backdrop-scale-")
    os.makedirs(work, exist_ok=True)
    png = os.path.join(work, "product.png")
    with open(png, "wb") as out:
        out.write(product_png())
    emulator, base_url = start_emulator(emulator_bin)
    env = dict(os.environ, PICWISH_API_KEY="emulator-key", PICWISH_BASE_URL=base_url,
               NO_COLOR="1")
    print(f"backdrop at catalog scale: {cli}, emulator {base_url} (no rate limit, 100 ms tasks), "
          f"--batch 1 --no-report --qps 1000, {os.cpu_count()} cores")
    header = ("| inputs | first run | per input | journal written | per input "
              "| journal after the rerun | peak RSS | rerun (all done) | stopped at half, resumed |")
    print(header)
    print("| " + " | ".join(["---:"] * 9) + " |")
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            inputs = os.path.join(work, f"in-{size}")
            out = os.path.join(work, f"out-{size}")
            shutil.rmtree(inputs, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(inputs)
            for n in range(size):
                # A file takes at most 65,000 links (ext4): one copy per 50,000 inputs.
                source = f"{png}.{n // 50_000}"
                if not os.path.exists(source):
                    shutil.copyfile(png, source)
                os.link(source, os.path.join(inputs, f"p{n:06d}.png"))
            common = ["generate", inputs, "--out", out, "--prompt", "a marble countertop",
                      "--batch", "1", "--no-report", "--qps", "1000", "--json"]
            code, seconds, rss, stderr = run_cli(cli, common, env)
            if code != 0:
                sys.exit(f"{size} inputs: exit {code}\n{stderr[-2000:]}")
            journal = os.path.join(out, ".backdrop-journal.jsonl")
            journal_bytes = os.path.getsize(journal)
            code, rerun_seconds, rerun_rss, stderr = run_cli(cli, common, env)
            if code != 0:
                sys.exit(f"{size} inputs, rerun: exit {code}\n{stderr[-2000:]}")
            compacted = os.path.getsize(journal)
            resumed = "–"
            if not args.no_resume:
                # Stopped (SIGINT) halfway through a fresh run, then resumed.
                shutil.rmtree(out)
                code, first_half, _, _ = run_cli(cli, common, env, interrupt_after=seconds / 2)
                code, second_half, _, stderr = run_cli(cli, common, env)
                if code != 0:
                    sys.exit(f"{size} inputs, resumed: exit {code}\n{stderr[-2000:]}")
                resumed = f"{first_half:.1f} s + {second_half:.1f} s"
            print(f"| {size:,} | {seconds:.1f} s | {seconds / size * 1000:.2f} ms "
                  f"| {journal_bytes / 2**20:.1f} MiB | {journal_bytes / size:.0f} B "
                  f"| {compacted / 2**20:.1f} MiB "
                  f"| {rss / 1024:.1f} MiB | {rerun_seconds:.1f} s, {rerun_rss / 1024:.1f} MiB "
                  f"| {resumed} |", flush=True)
            shutil.rmtree(inputs)
            shutil.rmtree(out)
    finally:
        emulator.terminate()
        emulator.wait()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
