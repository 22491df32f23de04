"""Image and audio inputs as message content parts.

Local files become base64 data URLs (images) or ``input_audio`` parts (wav/mp3);
image URLs pass through. Files are sized before they are read (images up to 8 MiB,
audio up to 25 MiB). The file type is read from the bytes, not the name, so a
renamed file is still recognised and a non-image is refused before sending.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Callable

from ._exceptions import ValidationError

__all__ = ["MAX_AUDIO_BYTES", "MAX_IMAGE_BYTES", "image_part", "audio_part", "text_part", "user_content"]

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # the reference: image inputs over 8 MB are dropped
# The Compass reference states no audio limit; OpenAI caps audio inputs at 25 MB. Without a cap a
# 300 MB wav was read, base64-encoded and sent (1.6 GB peak memory) only to be refused by the server.
MAX_AUDIO_BYTES = 25 * 1024 * 1024


def _image_mime(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _audio_format(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(source: str | Path) -> dict[str, Any]:
    """An ``image_url`` part from an http(s)/data URL or a local png/jpeg/gif/webp file."""
    text = str(source)
    if text.startswith(("http://", "https://", "data:image/")):
        return {"type": "image_url", "image_url": {"url": text}}
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValidationError(
            f"Image {text!r} is neither a file nor an http(s) URL. Give a path to a png/jpeg/gif/webp file or an image URL."
        )
    data = _read_capped(
        path,
        MAX_IMAGE_BYTES,
        lambda size: (
            f"Image {path.name!r} is {size:,} bytes; Compass drops images over 8 MiB ({MAX_IMAGE_BYTES:,} "
            "bytes). Resize or compress it first (e.g. with Pillow: img.thumbnail((2048, 2048)))."
        ),
    )
    mime = _image_mime(data[:16])
    if mime is None:
        raise ValidationError(
            f"{path.name!r} is not a png, jpeg, gif or webp image (its first bytes say otherwise). "
            "Convert it to one of these formats."
        )
    payload = base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}}


def _read_capped(path: Path, cap: int, too_big: Callable[[int], str]) -> bytes:
    """The file's bytes; sized before it is read, so a huge file costs neither memory nor a request."""
    size = os.stat(path).st_size
    if size > cap:
        raise ValidationError(too_big(size))
    return path.read_bytes()


def audio_part(source: str | Path) -> dict[str, Any]:
    """An ``input_audio`` part from a local wav or mp3 file of at most :data:`MAX_AUDIO_BYTES`."""
    path = Path(str(source)).expanduser()
    if not path.is_file():
        raise ValidationError(f"Audio file {str(source)!r} does not exist. Give the path to a wav or mp3 file.")
    data = _read_capped(
        path,
        MAX_AUDIO_BYTES,
        lambda size: (
            f"Audio file {path.name!r} is {size:,} bytes ({size / 2**20:.1f} MiB); audio input is capped at "
            f"25 MiB ({MAX_AUDIO_BYTES:,} bytes), so nothing was read or sent. Trim or compress it first, e.g. as mp3 "
            "(about a tenth of the size of wav): ffmpeg -i input.wav -t 600 -b:a 64k output.mp3."
        ),
    )
    fmt = _audio_format(data[:16])
    if fmt is None:
        raise ValidationError(
            f"{path.name!r} is not a wav or mp3 file (its first bytes say otherwise); Compass takes wav or mp3 audio input. "
            "Convert it, e.g. ffmpeg -i input.m4a output.wav."
        )
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": fmt}}


def user_content(
    text: str, *, images: list[str | Path] | None = None, audio: str | Path | None = None
) -> str | list[dict[str, Any]]:
    """The content of a user message: plain text, or parts when media are attached."""
    if not images and audio is None:
        return text
    parts: list[dict[str, Any]] = [text_part(text)] if text else []
    parts += [image_part(src) for src in images or []]
    if audio is not None:
        parts.append(audio_part(audio))
    return parts
