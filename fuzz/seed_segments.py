#!/usr/bin/env python3
"""Seeds for the queue_segment fuzz target: segments of good records in
the disk queue's format (engine/export/src/queue/segment.rs), one with a
flipped payload byte, one cut short mid-record."""
import os
import struct
import sys
import zlib

MAGIC = b"DBQ\x01"


def record(signal, items, payload):
    head = MAGIC + struct.pack("<IIB", len(payload), items, signal)
    return head + struct.pack("<I", zlib.crc32(head)) + struct.pack("<I", zlib.crc32(payload)) + payload


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
good = b"".join(record(i % 2, i, bytes([i]) * (i * 37 % 300)) for i in range(1, 8))
seeds = {
    "good": good,
    "empty_payload": record(0, 0, b""),
    "flipped": good[:60] + bytes([good[60] ^ 0x20]) + good[61:],
    "torn": good[: len(good) - 17],
    "zeros_after": good + bytes(512),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
