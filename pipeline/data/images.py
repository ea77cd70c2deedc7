"""Decode images once; keep them resized as uint8 in memory and in a cache keyed by content.

A split's images become one uint8 array [N, C, S, S]: letterboxed (the default: the longer side
resized to S, aspect kept, padded with black) or stretched (both sides to S, aspect lost: the
research group's preprocessing). The cache key hashes the files' bytes plus size, channels and
resize mode (everything that changes the array), so a later epoch, a later trial or a trial on another node with a copy of the data
loads one .npy file instead of decoding PNGs. Normalisation is the model's job (teacher and
student backbones may normalise differently), so the cache holds raw pixels.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import DataError

_VERSION = "v1"  # bump when the decoding below changes
_MEMORY: dict[str, np.ndarray] = {}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("KDSWEEP_CACHE", PROJECT_ROOT / "data" / ".cache"))


def content_key(paths: list[Path], size: int, channels: int, resize: str = "letterbox") -> str:
    """The cache key of a split's decoded images. Letterbox keeps the key it had before resize
    modes existed, so caches written then stay valid."""
    mode = "" if resize == "letterbox" else f":{resize}"
    h = hashlib.sha256(f"{_VERSION}:{size}:{channels}{mode}".encode())
    for p in paths:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:24]


def decode(path: Path, size: int, channels: int, resize: str = "letterbox") -> np.ndarray:
    """One image as uint8 [C, size, size], letterboxed or stretched (`resize`)."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if resize == "stretch":
                canvas = im.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(canvas, dtype=np.uint8)
                return arr[None] if channels == 1 else arr.transpose(2, 0, 1)
            w, h = im.size
            scale = size / max(w, h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            im = im.resize((nw, nh), Image.Resampling.BILINEAR)
            canvas = Image.new(im.mode, (size, size))
            canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    arr = np.asarray(canvas, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


class ImageSet:
    """The decoded images of one split; `save()` writes the cache (only after all succeeded)."""

    def __init__(self, paths: list[Path], size: int, channels: int, resize: str = "letterbox") -> None:
        self.key = content_key(paths, size, channels, resize)
        self.file = cache_dir() / f"images-{self.key}.npy"
        self.cached = self.key in _MEMORY or self.file.is_file()
        if self.key in _MEMORY:
            self.array = _MEMORY[self.key]
        elif self.cached:
            self.array = np.load(self.file)
        else:
            self.array = np.stack([decode(p, size, channels, resize) for p in paths])
        _MEMORY[self.key] = self.array

    def save(self) -> None:
        if self.file.is_file():
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.save(f, self.array)
        os.replace(tmp, self.file)  # atomic: parallel trials never read a half-written file
