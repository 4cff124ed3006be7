"""The bundle's ``README.md`` and per-half ``requirements.txt``: the exact commands, with versions from this build."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

VISION_SCRIPT = "vision_inference.py"
LANGUAGE_SCRIPT = "language_inference.py"
EXAMPLE_PROMPT = "What is in the image?"


@dataclass(frozen=True)
class BundleFacts:
    """What the README states about one bundle."""

    source_model: str
    model_type: str
    quantized: bool
    language_dtype: str


# The lowest versions vlparity itself supports (pyproject.toml); transformers is pinned to its minor release because
# mm_encoder_outputs, the way the embeddings enter the LM, is a transformers 5.24 interface.
SUPPORTED = {
    "numpy": "numpy>=1.26",
    "onnxruntime": "onnxruntime>=1.22",
    "Pillow": "Pillow>=10",
    "torch": "torch>=2.9",
    "transformers": "transformers>=5.24,<5.25",
}


def _requirements(names: list[str], extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    tested = ", ".join(f"{name} {importlib.metadata.version(name).split('+')[0]}" for name in names)
    return [f"# built and checked with {tested}", *(SUPPORTED[name] for name in names), *extra]


def vision_requirements() -> list[str]:
    return _requirements(["numpy", "onnxruntime", "Pillow"])


def language_requirements(quantized: bool) -> list[str]:
    # transformers loads AWQ checkpoints through gptqmodel; the AWQ format was checked with this exact release.
    awq = [f"gptqmodel=={importlib.metadata.version('gptqmodel')}"] if quantized else []
    return _requirements(["torch", "transformers", "numpy"], awq)


def render_readme(facts: BundleFacts) -> str:
    weights = "AWQ int4 (loaded in float16 by gptqmodel)" if facts.quantized else f"safetensors, {facts.language_dtype}"
    return f"""# Standalone bundle: {facts.model_type}

Built by vlparity from `{facts.source_model}`. Two halves that share nothing but two files:

- `vision/` — `vision.onnx`, `preprocess.json` and `{VISION_SCRIPT}`: needs only onnxruntime, numpy and Pillow.
  It reproduces the Hugging Face image processor in numpy (resize, normalisation, patchify, grid index inputs) and
  writes `image_embeds.npy` and `grid.json` (for a model with DeepStack, Qwen3-VL, also one `deepstack_<level>.npy`
  per level: the LM adds them after its first decoder layers).
- `language/` — the language model ({weights}), tokenizer, chat template and `{LANGUAGE_SCRIPT}`: needs only
  torch and transformers. It reads the vision outputs and a prompt and generates greedily.

`manifest.json` lists the sha256 of every file.

## Install

```bash
pip install -r vision/requirements.txt
pip install -r language/requirements.txt
```

## Run

```bash
python vision/{VISION_SCRIPT} --image IMAGE.png --output-dir vision_out
python language/{LANGUAGE_SCRIPT} --vision-output vision_out --prompt "{EXAMPLE_PROMPT}" \\
    --max-new-tokens 32 --output tokens.json
```

Several images: repeat `--image`; the prompt then refers to all of them, in order. Text only: leave out
`--vision-output`. `python language/{LANGUAGE_SCRIPT} --device cuda …` runs the language model on a GPU.

## What was checked

vlparity's tests run both scripts as subprocesses and require: `pixel_values` equal to the processor's within 1e-6
and `image_grid_thw` identical; embeddings within the `onnx` tolerance profile of vlparity's own ONNX path; greedy
tokens identical to that path's. See vlparity's `docs/bundles.md` for the measured figures.
"""
