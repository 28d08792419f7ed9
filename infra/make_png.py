#!/usr/bin/env python3
"""Writes a transparent RGBA PNG of about the given size (noise does not compress), for memory
measurements: `python infra/make_png.py big.png --mib 19.5` (the spec's limit is 20 MB)."""
import argparse
import os
import struct
import zlib


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--mib", type=float, default=19.5, help="file size to aim at, MiB")
    parser.add_argument("--width", type=int, default=2600)
    args = parser.parse_args()
    row = 1 + 4 * args.width
    height = max(256, min(4096, int(args.mib * 2**20 / row)))
    raw = b"".join(b"\0" + os.urandom(4 * args.width) for _ in range(height))
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", args.width, height, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 1))
           + chunk(b"IEND", b""))
    with open(args.out, "wb") as out:
        out.write(png)
    print(f"{args.out}: {args.width}x{height} RGBA, {len(png) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
