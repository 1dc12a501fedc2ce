"""A small generated class-per-folder image dataset: orientation-dependent glyphs.

Ten classes of simple strokes drawn with jitter and noise — ``L J / \\ < > b d
p q`` — as grayscale PNGs in ``root/train/<class>/`` (and ``root/test/``).
Every class's horizontal mirror image is another class, so training with
horizontal flips makes the task impossible to learn fully, and a small CNN
learns the task in a few epochs without them. Used by the tests and by
``experiments/cnn_reward.py`` to check that a short-trained child's validation
accuracy follows its training accuracy.

Example:

    write_glyph_folder("/tmp/glyphs", per_class=150, size=24)
    cfg = CnnSearchConfig(dataset="imagefolder", data_dir="/tmp/glyphs", ...)
"""

from __future__ import annotations

import os

import numpy as np

GLYPHS = ("L", "J", "slash", "backslash", "less", "greater", "b", "d", "p", "q")


def _strokes(name: str):
    """Line segments and circles of a glyph in unit coordinates (x right, y down)."""
    lines = {
        "L": [((0.25, 0.1), (0.25, 0.9)), ((0.25, 0.9), (0.8, 0.9))],
        "J": [((0.75, 0.1), (0.75, 0.9)), ((0.75, 0.9), (0.2, 0.9))],
        "slash": [((0.2, 0.9), (0.8, 0.1))],
        "backslash": [((0.2, 0.1), (0.8, 0.9))],
        "less": [((0.8, 0.1), (0.2, 0.5)), ((0.2, 0.5), (0.8, 0.9))],
        "greater": [((0.2, 0.1), (0.8, 0.5)), ((0.8, 0.5), (0.2, 0.9))],
        "b": [((0.25, 0.1), (0.25, 0.9))],
        "d": [((0.75, 0.1), (0.75, 0.9))],
        "p": [((0.25, 0.1), (0.25, 0.9))],
        "q": [((0.75, 0.1), (0.75, 0.9))],
    }[name]
    circles = {"b": [(0.5, 0.68)], "d": [(0.5, 0.68)], "p": [(0.5, 0.32)],
               "q": [(0.5, 0.32)]}.get(name, [])
    return lines, circles


def draw_glyph(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size x size`` uint8 grayscale image of glyph ``name`` with random jitter."""
    from PIL import Image, ImageDraw

    scale = rng.uniform(0.6, 0.85) * size
    ox = rng.uniform(0, size - scale)
    oy = rng.uniform(0, size - scale)
    width = int(rng.integers(2, 4))
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)

    def point(p):
        return (ox + p[0] * scale + rng.normal(0, 0.5), oy + p[1] * scale + rng.normal(0, 0.5))

    lines, circles = _strokes(name)
    for a, b in lines:
        draw.line([point(a), point(b)], fill=255, width=width)
    for cx, cy in circles:
        x, y = point((cx, cy))
        r = 0.22 * scale
        draw.ellipse([x - r, y - r, x + r, y + r], outline=255, width=width)
    pixels = np.asarray(image, np.float32) * rng.uniform(0.6, 1.0)
    pixels += rng.normal(0, 20, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_glyph_folder(root: str, per_class: int = 150, size: int = 24, test_per_class: int = 0,
                       seed: int = 0) -> str:
    """Writes ``root/train/<glyph>/<i>.png`` (and ``root/test/...``); returns ``root``.

    Args:
        root: Folder to write into (created).
        per_class: Training images per class (10 classes).
        size: Image side in pixels.
        test_per_class: Test images per class (0: no test/ folder).
        seed: Seed of the drawing.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for name in GLYPHS:
            folder = os.path.join(root, split, name)
            if count:
                os.makedirs(folder, exist_ok=True)
            for i in range(count):
                Image.fromarray(draw_glyph(name, size, rng)).save(os.path.join(folder, f"{i}.png"))
    return root
