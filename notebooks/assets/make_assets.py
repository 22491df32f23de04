"""Regenerate the sample files the tutorials send: ``circle.png`` and ``tone.wav``.

Standard library only, and byte-for-byte reproducible, so the saved notebook
outputs (which mention the files' sizes) stay valid:

    python notebooks/assets/make_assets.py
"""

from __future__ import annotations

import math
import struct
import wave
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def circle_png(size: int = 64) -> bytes:
    """A red disc on a white square, as an 8-bit RGB PNG."""
    centre, radius = (size - 1) / 2, size * 0.35
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type "none" for this scanline
        for x in range(size):
            inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius**2
            row += bytes((220, 30, 40) if inside else (255, 255, 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000, pitch: float = 440.0) -> None:
    """One second of a 440 Hz tone that fades in and out, 16-bit mono."""
    count = int(seconds * rate)
    frames = bytearray()
    for i in range(count):
        fade = min(1.0, i / (0.05 * rate), (count - i) / (0.05 * rate))
        frames += struct.pack("<h", int(12000 * fade * math.sin(2 * math.pi * pitch * i / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


if __name__ == "__main__":
    (HERE / "circle.png").write_bytes(circle_png())
    tone_wav(HERE / "tone.wav")
    for name in ("circle.png", "tone.wav"):
        print(name, (HERE / name).stat().st_size, "bytes")
