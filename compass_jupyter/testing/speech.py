"""Synthetic speech for audio replies: one tone per word, as 16-bit mono 24 kHz PCM.

A reply asked for audio output (``modalities`` with ``"audio"``) carries an
:class:`AudioReply`: its transcript is the reply text and its samples are
:func:`synth_speech` of the text's tokens, sent whole as a WAV file or raw
``pcm16`` (:meth:`AudioReply.data`) or streamed piece by piece.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import sys
import wave
from array import array
from dataclasses import dataclass

from .common import hash_int

__all__ = ["SAMPLE_RATE", "AudioReply", "synth_speech", "wav_bytes"]

SAMPLE_RATE = 24000
_SEGMENT = 1440  # 0.06 s at 24 kHz per transcript word
_PERIODS = (40, 45, 48, 60, 72, 80, 90, 96)  # each divides the segment: phase-continuous tones
_MIN_SAMPLES = SAMPLE_RATE // 2


@functools.cache
def _tone(period: int) -> bytes:
    one = array("h", (round(8000 * math.sin(2 * math.pi * k / period)) for k in range(period)))
    if sys.byteorder == "big":
        one.byteswap()
    return one.tobytes() * (_SEGMENT // period)


def synth_speech(tokens: list[str], voice: str) -> list[bytes]:
    """One tone per word (pitch from the voice and the word), padded to 0.5 s with silence."""
    pieces = [_tone(_PERIODS[hash_int(voice, t.strip()) % len(_PERIODS)]) for t in tokens]
    samples = sum(len(p) for p in pieces) // 2
    if samples < _MIN_SAMPLES:
        pieces.append(b"\x00\x00" * (_MIN_SAMPLES - samples))
    return pieces


def wav_bytes(pcm: bytes) -> bytes:
    """A WAV file around 16-bit mono 24 kHz little-endian samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


@dataclass
class AudioReply:
    """Synthetic speech: ``pieces`` of 16-bit mono 24 kHz PCM, one per transcript token."""

    id: str
    format: str
    transcript: str
    expires_at: int
    pieces: list[bytes]

    @property
    def pcm(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def tokens(self) -> int:
        # About 10 audio tokens per second.
        return max(1, math.ceil(len(self.pcm) / 2 / (SAMPLE_RATE / 10)))

    def data(self) -> str:
        """Base64 of a WAV file (format ``wav``) or of the raw samples (``pcm16``)."""
        raw = wav_bytes(self.pcm) if self.format == "wav" else self.pcm
        return base64.b64encode(raw).decode("ascii")
