"""Synthetic "one coloured shape on a background" images.

Shared by the fixture builder (fixture images now, training data later) so that the images the tests use and the
images a trained fixture learns from come from one drawing routine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
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


def random_scene(rng: random.Random, width: int, height: int) -> ShapeScene:
    """Draw scene parameters from ``rng`` (deterministic for a seeded ``random.Random``)."""
    grey = rng.randint(0, 90)
    return ShapeScene(
        width=width,
        height=height,
        color=rng.choice(sorted(COLORS)),
        shape=rng.choice(SHAPES),
        center=(rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)),
        size=rng.uniform(0.5, 0.85),
        background=(grey + rng.randint(0, 20), grey + rng.randint(0, 20), grey + rng.randint(0, 20)),
        noise=rng.choice((0, 0, 12)),
        seed=rng.randint(0, 2**31 - 1),
    )


def render(scene: ShapeScene) -> Image.Image:
    """Render ``scene`` to an RGB image; the same scene always gives the same pixels."""
    background = np.broadcast_to(np.array(scene.background, dtype=np.int16), (scene.height, scene.width, 3))
    if scene.noise:
        shape = (scene.height, scene.width, 1)
        noise = np.random.default_rng(scene.seed).integers(-scene.noise, scene.noise + 1, shape)
        background = background + noise
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
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


# Questions the fixtures are trained on, and how each is answered from the scene.
QUESTIONS: dict[str, str] = {
    "What is in the image?": "{article} {color} {shape}",
    "What color is the shape?": "{color}",
    "What shape is it?": "{shape}",
}


def answer(scene: ShapeScene, question: str) -> str:
    return QUESTIONS[question].format(article="a", color=scene.color, shape=scene.shape)


def random_size(
    rng: random.Random, min_side: int = 28, area: tuple[int, int] = (112, 224), max_ratio: float = 2.5
) -> tuple[int, int]:
    """Random image size: log-uniform area (side of the equivalent square in ``area``) and aspect ratio."""
    side = math.exp(rng.uniform(math.log(area[0]), math.log(area[1])))
    ratio = math.exp(rng.uniform(-math.log(max_ratio), math.log(max_ratio)))
    return max(min_side, round(side * math.sqrt(ratio))), max(min_side, round(side / math.sqrt(ratio)))


def heldout_scenes(count: int, seed: int = 10_000) -> list[ShapeScene]:
    """Scenes the fixtures never trained on (training draws seeds below 10 000), with a wider range of sizes."""
    rng = random.Random(seed)
    return [random_scene(rng, *random_size(rng, area=(100, 320))) for _ in range(count)]


@dataclass(frozen=True)
class Evaluation:
    correct: int
    total: int
    failures: tuple[tuple[ShapeScene, str], ...]  # scene and the text generated for it

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def _greedy(model, processor, scene: ShapeScene, question: str):
    """Greedy generation (8 tokens at most) for one rendered scene; returns (generate output, prompt length)."""
    import torch

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[render(scene)], return_tensors="pt").to(model.device)
    with torch.inference_mode():
        output = model.generate(
            **inputs, max_new_tokens=8, do_sample=False, temperature=None, top_p=None, top_k=None,
            output_logits=True, return_dict_in_generate=True,
        )  # fmt: skip
    return output, inputs["input_ids"].shape[1]


def evaluate(model, processor, scenes: list[ShapeScene], question: str = "What is in the image?") -> Evaluation:
    """Greedy-decode each scene and count exact answers that stop right after the answer (end-of-turn token)."""
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    correct, failures = 0, []
    for scene in scenes:
        output, prompt_length = _greedy(model, processor, scene, question)
        new = output.sequences[0, prompt_length:].tolist()
        generated = processor.tokenizer.decode(new, skip_special_tokens=False)
        if new and new[-1] == eos and processor.tokenizer.decode(new[:-1]) == answer(scene, question):
            correct += 1
        else:
            failures.append((scene, generated))
    return Evaluation(correct=correct, total=len(scenes), failures=tuple(failures))


def logit_margins(model, processor, scenes: list[ShapeScene], question: str = "What is in the image?") -> list[float]:
    """Top-1 minus top-2 logit at every greedy step: how far each generated token is from flipping."""
    import torch

    margins: list[float] = []
    for scene in scenes:
        output, _ = _greedy(model, processor, scene, question)
        for step in output.logits:
            top2 = torch.topk(step[0].float(), 2).values
            margins.append(float(top2[0] - top2[1]))
    return margins
