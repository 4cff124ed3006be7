"""Synthetic "one coloured shape on a background" images.

Shared by the fixture builder (fixture images now, training data later) so that the images the tests use and the
images a trained fixture learns from come from one drawing routine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class ShapeScene:
    """Everything needed to redraw one image exactly."""

    width: int
    height: int
    color: str
    shape: str
    center: tuple[float, float]  # fractions of width/height
    size: float  # fraction of the shorter side
    background: tuple[int, int, int]
    noise: int  # amplitude of per-pixel background noise, 0 for a plain background
    seed: int

    @property
    def answer(self) -> str:
        return f"a {self.color} {self.shape}"


def random_scene(rng: random.Random, width: int, height: int) -> ShapeScene:
    """Draw scene parameters from ``rng`` (deterministic for a seeded ``random.Random``)."""
    grey = rng.randint(0, 90)
    return ShapeScene(
        width=width,
        height=height,
        color=rng.choice(sorted(COLORS)),
        shape=rng.choice(SHAPES),
        center=(rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)),
        size=rng.uniform(0.35, 0.7),
        background=(grey + rng.randint(0, 20), grey + rng.randint(0, 20), grey + rng.randint(0, 20)),
        noise=rng.choice((0, 0, 12)),
        seed=rng.randint(0, 2**31 - 1),
    )


def render(scene: ShapeScene) -> Image.Image:
    """Render ``scene`` to an RGB image; the same scene always gives the same pixels."""
    image = Image.new("RGB", (scene.width, scene.height), scene.background)
    if scene.noise:
        noise_rng = random.Random(scene.seed)
        pixels = image.load()
        for y in range(scene.height):
            for x in range(scene.width):
                r, g, b = scene.background
                d = noise_rng.randint(-scene.noise, scene.noise)
                pixels[x, y] = (max(0, r + d), max(0, g + d), max(0, b + d))
    draw = ImageDraw.Draw(image)
    cx, cy = scene.center[0] * scene.width, scene.center[1] * scene.height
    half = scene.size * min(scene.width, scene.height) / 2
    fill = COLORS[scene.color]
    if scene.shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif scene.shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:
        points = [(cx + half * math.sin(a), cy - half * math.cos(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
        draw.polygon(points, fill=fill)
    return image
