"""Synthetic "one coloured shape on a background" images, and the questions the fixtures answer about them.

Shared by the fixture builder (the fixture images, the training scenes) and the fixture tests, so that the images the
tests use and the images a trained fixture learns from come from one drawing routine. Colours, shapes and answers
are easy-VQA's (the public data set the fixtures are also trained and judged on); the scenes go far wider than
easy-VQA's light 64 px squares: any background colour, noise, gradients, stripes and checkers, shapes from 10 % to
90 % of the image, rotation, and sizes from 28 px up. ``difficulty`` narrows all of that to easy scenes for the start
of a training curriculum.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# easy-VQA's palette (the exact pixel values of its images)
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "blue": (0, 0, 255),
    "brown": (165, 42, 42),
    "gray": (128, 128, 128),
    "green": (0, 255, 0),
    "red": (255, 0, 0),
    "teal": (0, 128, 128),
    "yellow": (255, 255, 0),
}
SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")
TEXTURES: tuple[str, ...] = ("plain", "noise", "gradient", "stripes", "checker")
MIN_CONTRAST = 110.0  # least RGB distance between the shape's colour and any background colour behind it


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
    noise: int  # amplitude of per-pixel noise over the whole image, 0 for none
    seed: int
    angle: float = 0.0  # rotation in degrees
    elongation: float = 1.0  # a rectangle's width / height
    texture: str = "plain"
    second: tuple[int, int, int] = (0, 0, 0)  # the texture's other colour
    period: float = 0.1  # stripe / checker period, fraction of the shorter side
    tint: tuple[int, int, int] = (0, 0, 0)  # small offset of the shape's colour from the palette


def _color_distance(a: Sequence[int], b: Sequence[int]) -> float:
    return math.dist(a, b)


def _background_color(rng: random.Random, fill: tuple[int, int, int], light: bool) -> tuple[int, int, int]:
    while True:
        if light:
            color = (rng.randint(200, 255), rng.randint(200, 255), rng.randint(200, 255))
        else:
            color = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        if _color_distance(color, fill) >= MIN_CONTRAST:
            return color


def random_scene(rng: random.Random, width: int, height: int, difficulty: float = 1.0) -> ShapeScene:
    """Draw scene parameters from ``rng`` (deterministic for a seeded ``random.Random``).

    ``difficulty`` 0 gives easy-VQA-like scenes (plain light or dark backgrounds, upright shapes at 30–80 % of the
    image); 1 the whole range (any colour and texture, 10–90 %, any rotation, noise)."""
    color = rng.choice(sorted(COLORS))
    shape = rng.choice(SHAPES)
    spread = 0.1 + 0.9 * difficulty
    tint = tuple(rng.randint(-int(20 * difficulty), int(20 * difficulty)) for _ in range(3))
    fill = tuple(min(255, max(0, c + t)) for c, t in zip(COLORS[color], tint, strict=True))
    size = rng.uniform(0.3 - 0.2 * difficulty, 0.8 + 0.1 * difficulty)
    texture = rng.choice(TEXTURES) if rng.random() < 0.7 * difficulty else "plain"
    background = _background_color(rng, fill, light=rng.random() < 0.5 - 0.2 * difficulty)
    margin = min(0.5, size / 2 + 0.02)
    return ShapeScene(
        width=width,
        height=height,
        color=color,
        shape=shape,
        center=(rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin)),
        size=size,
        background=background,
        noise=rng.choice((0, 0, 8, int(40 * spread))) if difficulty else 0,
        seed=rng.randint(0, 2**31 - 1),
        angle=rng.uniform(-180, 180) if rng.random() < 0.6 * difficulty else 0.0,
        elongation=math.exp(rng.uniform(-0.5, 0.5)) if shape == "rectangle" else 1.0,
        texture=texture,
        second=_background_color(rng, fill, light=False),
        period=rng.uniform(0.04, 0.3),
        tint=tint,
    )


def _background(scene: ShapeScene) -> np.ndarray:
    h, w = scene.height, scene.width
    base = np.array(scene.background, dtype=np.float32)
    second = np.array(scene.second, dtype=np.float32)
    if scene.texture == "plain":
        return np.broadcast_to(base, (h, w, 3)).copy()
    rng = np.random.default_rng(scene.seed + 1)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / min(h, w)
    theta = rng.uniform(0, math.pi)
    along = x * math.cos(theta) + y * math.sin(theta)
    if scene.texture == "noise":
        weight = rng.uniform(0, 1, (h, w))
    elif scene.texture == "gradient":
        weight = (along - along.min()) / max(1e-6, float(along.max() - along.min()))
    elif scene.texture == "stripes":
        weight = (np.floor(along / scene.period) % 2).astype(np.float32)
    else:  # checker
        weight = ((np.floor(x / scene.period) + np.floor(y / scene.period)) % 2).astype(np.float32)
    weight = weight[..., None]
    return base * (1 - weight) + second * weight


def shape_polygon(scene: ShapeScene) -> list[tuple[float, float]]:
    """The shape's outline in pixels (a circle as a 48-gon), rotated by ``scene.angle``."""
    cx, cy = scene.center[0] * scene.width, scene.center[1] * scene.height
    half = scene.size * min(scene.width, scene.height) / 2
    if scene.shape == "circle":
        points = [(half * math.cos(2 * math.pi * k / 48), half * math.sin(2 * math.pi * k / 48)) for k in range(48)]
    elif scene.shape == "rectangle":
        hw, hh = half * math.sqrt(scene.elongation), half / math.sqrt(scene.elongation)
        scale = half / max(hw, hh)
        hw, hh = hw * scale, hh * scale
        points = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
    else:
        points = [(half * math.sin(a), -half * math.cos(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    cos, sin = math.cos(math.radians(scene.angle)), math.sin(math.radians(scene.angle))
    return [(cx + px * cos - py * sin, cy + px * sin + py * cos) for px, py in points]


def shape_mask(scene: ShapeScene, supersample: int = 1) -> Image.Image:
    """Where the shape is: 255 inside, 0 outside (greyscale, the image's size); with ``supersample`` > 1 drawn that
    many times larger and box-filtered down, so that edges are anti-aliased as a camera or a renderer draws them."""
    big = Image.new("L", (scene.width * supersample, scene.height * supersample), 0)
    outline = [(x * supersample, y * supersample) for x, y in shape_polygon(scene)]
    ImageDraw.Draw(big).polygon(outline, fill=255)
    return big if supersample == 1 else big.resize((scene.width, scene.height), Image.Resampling.BOX)


def render(scene: ShapeScene, mask: Image.Image | None = None) -> Image.Image:
    """Render ``scene`` to an RGB image; the same scene always gives the same pixels. ``mask``: the scene's
    ``shape_mask`` where the caller has it already (an anti-aliased one costs as much as the rest of the image)."""
    pixels = _background(scene)
    alpha = np.asarray(shape_mask(scene) if mask is None else mask, dtype=np.float32)[..., None] / 255.0
    fill = np.clip(np.array(COLORS[scene.color]) + np.array(scene.tint), 0, 255).astype(np.float32)
    pixels = pixels * (1 - alpha) + fill * alpha
    if scene.noise:
        rng = np.random.default_rng(scene.seed)
        pixels = pixels + rng.integers(-scene.noise, scene.noise + 1, (scene.height, scene.width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


# The fixture's prompts (fixtures/prompts.json) and how each is answered from the scene.
QUESTIONS: dict[str, str] = {
    "What is in the image?": "a {color} {shape}",
    "What color is the shape?": "{color}",
    "What shape is it?": "{shape}",
}
# Paraphrases the fixtures are trained on: the caption task, and easy-VQA's own question templates.
CAPTION_PROMPTS = (
    "What is in the image?",
    "What do you see?",
    "Describe the image.",
    "What is shown in the picture?",
    "what is in this image?",
    "Name the shape and its color.",
)
COLOR_PROMPTS = (
    "What color is the shape?",
    "what color is the shape?",
    "what color is the {shape}?",
    "what is the color of the {shape}?",
    "what is the color of the shape?",
)
SHAPE_PROMPTS = (
    "What shape is it?",
    "what shape is in the image?",
    "what shape does the image contain?",
    "what shape is present?",
    "what is the {color} shape?",
)
# easy-VQA's yes/no templates: (template, negated); {thing} is "<color> shape" or a shape name
YES_NO_PROMPTS = (
    ("is a {thing} present?", False),
    ("is there a {thing}?", False),
    ("does the image contain a {thing}?", False),
    ("is there a {thing} in the image?", False),
    ("does the image not contain a {thing}?", True),
    ("is there not a {thing}?", True),
    ("is there not a {thing} in the image?", True),
    ("is no {thing} present?", True),
)


def answer(scene: ShapeScene, question: str) -> str:
    return QUESTIONS[question].format(color=scene.color, shape=scene.shape)


def caption(color: str, shape: str) -> str:
    return f"a {color} {shape}"


def random_question(
    rng: random.Random,
    color: str,
    shape: str,
    negations: bool = True,
    yes_no_weight: float = 4,
    negated_share: float | None = None,
    shape_share: float = 0.5,
) -> tuple[str, str]:
    """One (question, answer) about an image holding one ``color`` ``shape``: caption, colour, shape or yes/no
    (yes/no balanced between present and absent things, and between colours and shapes; ``negations=False`` keeps
    to the templates that ask without "not"/"no", the easy start of a curriculum). ``yes_no_weight`` (against 2 for
    each naming kind), ``negated_share`` (of yes/no templates; None: uniform over the templates, half negated) and
    ``shape_share`` (yes/no about a shape rather than a colour) over-sample yes/no kinds, for a late phase."""
    kind = rng.choices(("caption", "color", "shape", "yes_no"), weights=(2, 2, 2, yes_no_weight))[0]
    if kind == "caption":
        return rng.choice(CAPTION_PROMPTS), caption(color, shape)
    if kind == "color":
        return rng.choice(COLOR_PROMPTS).format(shape=shape), color
    if kind == "shape":
        return rng.choice(SHAPE_PROMPTS).format(color=color), shape
    if negations and negated_share is not None:
        wanted = rng.random() < negated_share
        template, negated = rng.choice([t for t in YES_NO_PROMPTS if t[1] == wanted])
    else:
        template, negated = rng.choice([t for t in YES_NO_PROMPTS if negations or not t[1]])
    present = rng.random() < 0.5
    if rng.random() >= shape_share:
        thing = (color if present else rng.choice([c for c in sorted(COLORS) if c != color])) + " shape"
    else:
        thing = shape if present else rng.choice([s for s in SHAPES if s != shape])
    return template.format(thing=thing), "yes" if present != negated else "no"


def random_size(
    rng: random.Random, min_side: int = 28, area: tuple[int, int] = (112, 224), max_ratio: float = 2.5
) -> tuple[int, int]:
    """Random image size: log-uniform area (side of the equivalent square in ``area``) and aspect ratio."""
    side = math.exp(rng.uniform(math.log(area[0]), math.log(area[1])))
    ratio = math.exp(rng.uniform(-math.log(max_ratio), math.log(max_ratio)))
    return max(min_side, round(side * math.sqrt(ratio))), max(min_side, round(side / math.sqrt(ratio)))


def heldout_scenes(count: int, seed: int = 10_000) -> list[ShapeScene]:
    """Scenes the fixtures never trained on (training draws from other seeds), over the whole range."""
    rng = random.Random(seed)
    return [random_scene(rng, *random_size(rng, area=(64, 448), max_ratio=3.0)) for _ in range(count)]


@dataclass(frozen=True)
class Evaluation:
    correct: int
    total: int
    failures: tuple[tuple[str, str, str], ...]  # (question, expected, generated)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def _greedy(model, processor, images: list[Image.Image], questions: list[str], logits: bool = False):
    """Greedy generation (8 tokens at most) for a batch of (image, question); returns (output, prompt length)."""
    import torch

    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for question in questions
    ]
    processor.tokenizer.padding_side = "left"
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True).to(model.device)
    with torch.inference_mode():
        output = model.generate(
            **inputs, max_new_tokens=8, do_sample=False, temperature=None, top_p=None, top_k=None,
            output_logits=logits, return_dict_in_generate=True,
        )  # fmt: skip
    return output, inputs["input_ids"].shape[1]


def answer_texts(model, processor, images: list[Image.Image], questions: list[str], batch: int = 16) -> list[str]:
    """Greedy answers, decoded up to the end-of-turn token; an answer that never ends gets a trailing "…"."""
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    texts: list[str] = []
    for start in range(0, len(images), batch):
        chunk = slice(start, start + batch)
        output, prompt_length = _greedy(model, processor, images[chunk], questions[chunk])
        for row in output.sequences[:, prompt_length:].tolist():
            ended = eos in row
            tokens = row[: row.index(eos)] if ended else row
            texts.append(processor.tokenizer.decode(tokens, skip_special_tokens=True) + ("" if ended else "…"))
    return texts


def score(questions: list[str], expected: list[str], generated: list[str]) -> Evaluation:
    """Exact answers (the answer, then end-of-turn) out of all."""
    failures = tuple((q, e, g) for q, e, g in zip(questions, expected, generated, strict=True) if e != g)
    return Evaluation(correct=len(expected) - len(failures), total=len(expected), failures=failures)


def evaluate(model, processor, scenes: list[ShapeScene], question: str = "What is in the image?") -> Evaluation:
    """Greedy-decode each scene and count exact answers that stop right after the answer (end-of-turn token)."""
    generated = answer_texts(model, processor, [render(s) for s in scenes], [question] * len(scenes))
    return score([question] * len(scenes), [answer(s, question) for s in scenes], generated)


def logit_margins(model, processor, scenes: list[ShapeScene], question: str = "What is in the image?") -> list[float]:
    """Top-1 minus top-2 logit at every greedy step: how far each generated token is from flipping."""
    import torch

    margins: list[float] = []
    for scene in scenes:
        output, _ = _greedy(model, processor, [render(scene)], [question], logits=True)
        for step in output.logits:
            top2 = torch.topk(step[0].float(), 2).values
            margins.append(float(top2[0] - top2[1]))
    return margins
