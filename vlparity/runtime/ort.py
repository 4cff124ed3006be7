"""ONNX Runtime sessions with explicit execution-provider choice and a provider audit.

ORT silently runs a model on the CPU EP when the requested provider is missing or rejects nodes. A parity run on
"CUDA" that actually ran on CPU proves nothing, so every session records which providers it registered and which
provider executed each node (from one profiled run), and refuses a run where the requested EP did no work unless
fallback is explicitly allowed.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlparity.errors import ArtefactError, InputShapeError, UsageError, VlparityError
from vlparity.runtime.vitisai import (
    DEFAULT_MAX_NPU_FALLBACK,
    VITISAI,
    Placement,
    check_provider_options,
    judge_placement,
    read_placement,
    report_directory,
)

if TYPE_CHECKING:  # annotations only: the pytest plugin reads EP_CHOICES at start-up without importing numpy
    import numpy as np

log = logging.getLogger(__name__)

EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "vitisai": VITISAI,
}
EP_CHOICES = (*EP_NAMES, "auto")
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class ProviderFallbackError(VlparityError):
    """The requested execution provider did not run the model (ORT fell back to another provider)."""


@dataclass(frozen=True)
class OrtOptions:
    ep: str = "cpu"
    provider_options: dict[str, str] = field(default_factory=dict)
    allow_fallback: bool = False
    graph_optimization: str = "all"
    threads: int = 0  # 0: ORT's default (all cores)
    max_npu_fallback: float = DEFAULT_MAX_NPU_FALLBACK  # VitisAI: share of ops (or GOPs) allowed off the NPU

    def __post_init__(self) -> None:
        """Refuse what would be silently ignored, when the options are read (start-up), not after a model load."""
        if not 0.0 <= self.max_npu_fallback <= 1.0:
            raise UsageError(f"--max-npu-fallback {self.max_npu_fallback}: must be a fraction in [0, 1] (e.g. 0.05).")
        if self.ep in EP_NAMES:
            check_provider_options(EP_NAMES[self.ep], self.provider_options)


def parse_provider_options(items: list[str]) -> dict[str, str]:
    """``["config_file=vaip.json", "device_id=0"]`` → ``{"config_file": "vaip.json", "device_id": "0"}``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--ep-option {item!r}: expected KEY=VALUE (e.g. config_file=vaip_config.json).")
        options[key.strip()] = value.strip()
    return options


def requested_provider(options: OrtOptions) -> str:
    """Map ``--ep`` to an ORT provider name that this onnxruntime build has; a missing one is a usage error."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if options.ep == "auto":
        return "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
    if options.ep not in EP_NAMES:
        raise UsageError(f"--ep {options.ep!r} is not one of {', '.join(EP_CHOICES)}.")
    provider = EP_NAMES[options.ep]
    if provider not in available:
        raise UsageError(
            f"--ep {options.ep}: this onnxruntime build ({onnxruntime.__version__}) has no {provider}; available: "
            f"{', '.join(available)}. Install the matching build (onnxruntime-gpu for CUDA, the Ryzen AI onnxruntime "
            "for VitisAI) or choose another --ep."
        )
    return provider


@dataclass
class ProviderAudit:
    requested: str
    registered: list[str]
    nodes_per_provider: dict[str, int]
    fallback_allowed: bool
    placement: dict[str, Any] | None = None  # VitisAI: the compiler's placement report, judged at session creation

    @property
    def requested_did_work(self) -> bool:
        return self.nodes_per_provider.get(self.requested, 0) > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "registered": self.registered,
            "nodes_per_provider": self.nodes_per_provider,
            "fallback_allowed": self.fallback_allowed,
            **({"placement": self.placement} if self.placement is not None else {}),
        }


class AuditedSession:
    """An ``InferenceSession`` whose first run is profiled to learn which provider executed each node."""

    def __init__(self, model_path: Path, options: OrtOptions) -> None:
        import onnxruntime

        if not model_path.is_file():
            raise ArtefactError(f"{model_path}: ONNX model not found; rebuild the export.")
        self.options = options
        self.provider = requested_provider(options)
        session_options = onnxruntime.SessionOptions()
        session_options.graph_optimization_level = {
            "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[options.graph_optimization]
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        # ORT's pool threads busy-wait after each run by default, and the LM that runs next in torch then shares the
        # cores with them: awq+onnx generation ran 80 ms instead of 47 on 2 cores (docs/perf-notes.md)
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session_options.enable_profiling = True
        session_options.profile_file_prefix = str(model_path.parent / ".ort-profile")
        providers: list[Any] = [(self.provider, dict(options.provider_options))]
        if self.provider != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(model_path), session_options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
            raise ArtefactError(f"{model_path}: onnxruntime could not load the model ({exc}).") from exc
        self.placement = self._placement(model_path)
        self.audit: ProviderAudit | None = None
        self.model_path = model_path
        self.input_names = [value.name for value in self.session.get_inputs()]
        self.output_names = [value.name for value in self.session.get_outputs()]
        self.input_shapes = {value.name: list(value.shape) for value in self.session.get_inputs()}
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)  # vlparity's exports stamp it

    @property
    def fixed_shape(self) -> bool:
        """Whether every input dimension is a number (a fixed-shape export: it takes one image of one size)."""
        return all(isinstance(dim, int) for shape in self.input_shapes.values() for dim in shape)

    def _check_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        """Refuse a feed that does not fit the model's fixed dimensions, before ORT fails on it deep in a kernel."""
        for name in self.input_names:
            expected, given = self.input_shapes[name], list(feeds[name].shape)
            fixed = [(e, g) for e, g in zip(expected, given, strict=False) if isinstance(e, int)]
            if len(expected) == len(given) and all(e == g for e, g in fixed):
                continue
            shape = self.metadata.get("static_shape")
            exported = f", a fixed-shape export for {shape} images" if shape else ""
            remedy = (
                f"run with --static-shape {shape} so that every image is resized to it"
                if shape
                else "feed images of the size it was exported for"
            )
            raise InputShapeError(
                f"{self.model_path}: input {name!r} is fixed at {expected}{exported}, but was fed {given}. Either "
                f"{remedy}, or use an export with dynamic axes (vlparity export-onnx without --static-shape)."
            )

    def _placement(self, model_path: Path) -> Placement | None:
        """VitisAI compiles at session creation and reports where each node went; judge it now, before any run. ORT's
        own view cannot say it: a compiled partition is one node of the EP, whatever runs it."""
        if self.provider != VITISAI or VITISAI not in self.session.get_providers():
            return None
        directory = report_directory(self.options.provider_options, model_path)
        placement = read_placement(directory)
        if placement is None:
            log.warning(
                "VitisAI wrote no placement report in %s: NPU placement not audited; pass --ep-option cache_dir=DIR "
                "--ep-option enable_cache_file_io_in_mem=0 so that it writes one there (docs/npu.md)",
                directory,
            )
            return None
        judge_placement(placement, self.options.max_npu_fallback)
        return placement

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise ArtefactError(f"the ONNX model expects inputs {missing} that were not provided")
        self._check_shapes(feeds)
        result = self.session.run(outputs, {name: feeds[name] for name in self.input_names})
        if self.audit is None:
            self.audit = self._audit(Path(self.session.end_profiling()))
        return result

    def _audit(self, profile: Path) -> ProviderAudit:
        events = json.loads(profile.read_text())
        profile.unlink(missing_ok=True)
        counts = Counter(
            event["args"]["provider"]
            for event in events
            if event.get("cat") == "Node"
            and event.get("name", "").endswith("_kernel_time")
            and "provider" in event.get("args", {})
        )
        audit = ProviderAudit(
            requested=self.provider,
            registered=list(self.session.get_providers()),
            nodes_per_provider=dict(counts),
            fallback_allowed=self.options.allow_fallback,
            placement=self.placement.as_dict(self.options.max_npu_fallback) if self.placement else None,
        )
        log.info("ORT provider audit: %s", audit.as_dict())
        if not audit.requested_did_work and not self.options.allow_fallback:
            raise ProviderFallbackError(
                f"--ep {self.options.ep}: {self.provider} executed no node of the model (registered "
                f"{audit.registered}, nodes per provider {dict(counts)}). The run would measure another provider; "
                "fix the provider set-up or pass --allow-ep-fallback to accept it."
            )
        return audit
