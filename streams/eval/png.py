"""A tiny raster canvas that writes PNG files with numpy and zlib only.

matplotlib is not among the pinned dependencies and the evaluation adds none,
so its two plots are drawn here: filled rectangles, lines, dots and text in a
5x7 bitmap font (upper case; lower case is drawn as upper case), enough for
labelled bars and a labelled scatter. PNG is written as 8-bit RGB, one IDAT.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Canvas", "Color", "png_bytes"]

Color = tuple[int, int, int]

_GLYPHS_SRC = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "@": "01110 10001 00001 01101 10101 10101 01110",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "?": "01110 10001 00001 00010 00100 00000 00100",
}
_GLYPHS: dict[str, npt.NDArray[np.bool_]] = {
    ch: np.array([[c == "1" for c in row] for row in src.split()], dtype=bool)
    for ch, src in _GLYPHS_SRC.items()
}
# Glyph cell: 5 columns plus one of spacing, 7 rows.
_ADVANCE = 6
_HEIGHT = 7


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit RGB PNG of an (height, width, 3) array."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError("pixels must be a (height, width, 3) uint8 array")
    height, width = pixels.shape[:2]
    raw = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


class Canvas:
    """An RGB raster with clipped drawing primitives; (0, 0) is the top left."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = background

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        """Fill the rectangle between two corners (any order), clipped to the canvas."""
        xa, xb = sorted((round(x0), round(x1)))
        ya, yb = sorted((round(y0), round(y1)))
        xa, ya = max(xa, 0), max(ya, 0)
        xb, yb = min(xb, self.width), min(yb, self.height)
        if xa < xb and ya < yb:
            self.pixels[ya:yb, xa:xb] = color

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: Color, width: int = 1
    ) -> None:
        """A straight line of ``width`` pixels, drawn as small squares along it."""
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        half = width / 2
        for t in np.linspace(0.0, 1.0, steps):
            x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            self.rect(x - half, y - half, x + half, y + half, color)

    def dot(self, x: float, y: float, radius: int, color: Color) -> None:
        """A filled disc."""
        for dy in range(-radius, radius + 1):
            dx = int((radius * radius - dy * dy) ** 0.5)
            self.rect(x - dx, y + dy, x + dx + 1, y + dy + 1, color)

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * _ADVANCE * scale

    def text(
        self, x: float, y: float, text: str, color: Color = (0, 0, 0), scale: int = 2,
        anchor: str = "left",
    ) -> None:  # fmt: skip
        """Draw ``text`` with its top at ``y``; ``anchor`` left, center or right of ``x``."""
        width = self.text_width(text, scale)
        left = x - (width / 2 if anchor == "center" else width if anchor == "right" else 0)
        for n, ch in enumerate(text.upper()):
            glyph = _GLYPHS.get(ch, _GLYPHS["?"])
            gx = left + n * _ADVANCE * scale
            for row, col in zip(*np.nonzero(glyph), strict=True):
                px, py = gx + col * scale, y + row * scale
                self.rect(px, py, px + scale, py + scale, color)

    @staticmethod
    def text_height(scale: int = 2) -> int:
        return _HEIGHT * scale

    def save(self, path: Path) -> None:
        path.write_bytes(png_bytes(self.pixels))
