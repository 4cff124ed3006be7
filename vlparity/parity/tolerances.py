"""Tolerance profiles per path, read from the versioned ``tolerances.toml`` beside this module."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from vlparity.errors import UsageError

TOLERANCES_FILE = Path(__file__).with_name("tolerances.toml")


@dataclass(frozen=True)
class Tolerance:
    """Limits one path must meet against ``original``. ``tokens``: ``exact`` or ``topk`` (vLLM's rule).

    Elementwise atol/rtol catch local errors; the per-token cosine and the relative L2 error are scale-aware and catch
    what ``atol = inf`` profiles (fp16, int8) would otherwise miss, e.g. embeddings scaled by 1.01 (cosine 1).
    """

    vision_atol: float
    vision_rtol: float
    vision_min_cosine: float
    vision_max_rel_l2: float
    tokens: Literal["exact", "topk"]
    top_k: int
    kl_max: float
    same_top1_min: float
    kernel_max_abs_logit: float  # quantized model vs its dequantized float twin (inf where there is no twin)
    weight_max_rel_l2: float  # quantized paths: each LM linear's dequantized effective weight vs original's (inf: none)
    settled_p: float  # KL / same-top-1 gate only steps where the reference's top-1 probability reaches this
    max_accuracy_drop: float  # eval set only (--eval-set): accuracy(original) − accuracy(path), the point estimate
    tensor_min_sqnr_db: float  # derived ONNX graphs (onnx-bf16, onnx-qdq): every tensor vs the fp32 graph (−inf: none)
    weight_min_sqnr_db: float  # derived ONNX graphs: every changed weight vs the fp32 graph's (−inf: none)
    version: int


def load_tolerances(path: Path = TOLERANCES_FILE, model_type: str | None = None) -> dict[str, Tolerance]:
    """Every path's profile: ``[defaults]``, then ``[paths.<path>]``, then ``[families.<model_type>.<path>]``."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    defaults: dict[str, Any] = document.get("defaults", {})
    paths: dict[str, Any] = document.get("paths", {})
    families: dict[str, Any] = document.get("families", {})
    for family, tables in families.items():
        if tables.keys() - paths.keys():
            raise UsageError(
                f"{path}: [families.{family}] overrides unknown path(s) {sorted(tables.keys() - paths.keys())}; "
                "every family override needs a [paths.<path>] profile."
            )
    family_tables = families.get(model_type, {}) if model_type else {}
    names = {field.name for field in fields(Tolerance)}
    profiles = {}
    for path_name, table in paths.items():
        values = {**defaults, **table, **family_tables.get(path_name, {}), "version": document["version"]}
        unknown = values.keys() - names
        missing = names - values.keys()
        if unknown or missing or values["tokens"] not in ("exact", "topk"):
            raise UsageError(
                f"{path}: profile [paths.{path_name}] is invalid (unknown {sorted(unknown)}, missing "
                f"{sorted(missing)}, tokens={values.get('tokens')!r}); fix the file."
            )
        profiles[path_name] = Tolerance(**values)
    return profiles


def tolerance_for(path_name: str, model_type: str | None = None, path: Path = TOLERANCES_FILE) -> Tolerance:
    """The profile of ``path_name``, with the overrides measured for ``model_type``'s family if there are any."""
    profiles = load_tolerances(path, model_type)
    if path_name not in profiles:
        raise UsageError(
            f"{path}: no tolerance profile [paths.{path_name}]; add one (with where its numbers came from)."
        )
    return profiles[path_name]
