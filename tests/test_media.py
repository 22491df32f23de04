"""media: image and audio files as content parts, recognised by their bytes."""

from __future__ import annotations

import base64
import io
import wave

import pytest

from compass_jupyter._exceptions import ValidationError
from compass_jupyter.media import MAX_IMAGE_BYTES, audio_part, image_part, user_content

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 32
MP3 = b"ID3\x03\x00" + b"\x00" * 32


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, mime", [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
)
def test_an_image_is_recognised_by_its_bytes_whatever_its_name(tmp_path, data, mime):
    path = tmp_path / "picture.txt"  # the name says nothing
    path.write_bytes(data)
    url = image_part(path)["image_url"]["url"]
    assert url.startswith(f"data:{mime};base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == data


def test_urls_pass_through_and_other_files_are_refused(tmp_path):
    assert image_part("https://example.com/cat.png")["image_url"]["url"] == "https://example.com/cat.png"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValidationError, match="not a png, jpeg, gif or webp"):
        image_part(text)
    with pytest.raises(ValidationError, match="neither a file nor an http"):
        image_part(tmp_path / "missing.png")


def test_an_image_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(PNG)
        fh.truncate(MAX_IMAGE_BYTES + 1)  # sparse: large on paper, nothing to read
    monkeypatch.setattr(type(big), "read_bytes", lambda self: pytest.fail("a file over the cap was read"))
    with pytest.raises(ValidationError, match="8 MiB"):
        image_part(big)


@pytest.mark.parametrize("data, fmt", [(_wav(), "wav"), (MP3, "mp3")])
def test_audio_is_wav_or_mp3_by_its_bytes(tmp_path, data, fmt):
    path = tmp_path / "clip.bin"
    path.write_bytes(data)
    part = audio_part(path)
    assert part["input_audio"]["format"] == fmt
    assert base64.b64decode(part["input_audio"]["data"]) == data
    path.write_bytes(PNG)
    with pytest.raises(ValidationError, match="not a wav or mp3"):
        audio_part(path)


def test_user_content_is_text_alone_or_parts(tmp_path):
    assert user_content("Hi") == "Hi"
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    parts = user_content("Look", images=[image])
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert [p["type"] for p in user_content("", images=[image])] == ["image_url"]
