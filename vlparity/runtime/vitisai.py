"""VitisAI (AMD Ryzen AI NPU) execution provider: provider-option keys and the compiler's placement report.

Why: both of VitisAI's quiet failure modes end in a CPU run that still produces correct numbers, so parity alone never
sees them.

* ONNX Runtime hands VitisAI's provider options through unchecked (``vitisai_provider_factory.cc`` copies every key
  into the EP's map) and the EP ignores keys it does not know: ``cachedir=…`` instead of ``cache_dir=…`` compiles into
  the default cache, ``targt=X1`` compiles for the default target. ``check_provider_options`` refuses such a key
  before a session exists and names the closest known one.
* The EP partitions the graph itself: operators the NPU compiler does not support (e.g. ``Erf`` in an fp32 GELU) run
  on the CPU, and a rejected float tail can leave the whole graph there (published: 0 of 965 YOLOv8n nodes on the
  NPU). ORT's own node placement cannot show it (a compiled partition is one EP node, whatever runs it), so the
  placement is read from the compiler's report and judged against ``--max-npu-fallback``.

What the EP writes, in ``<cache_dir>/<cache_key>/`` (sources below; docs/npu.md has the details):

* ``vitisai_ep_report.json`` (every flow): ``deviceStat`` = ``[{"name": "all"|"CPU"|"NPU", "nodeNum": N,
  "supportedOpType": ["::Add", …]}, …]`` (older releases name the NPU ``DPU``), ``nodeStat`` = one entry per node with
  ``opType`` and ``device``, ``subgraphStat``. Operator counts and the op types on each device; no GOPs.
* ``final-vaiml-pass-summary.txt`` (``preliminary-…`` while compiling; the VAIML/BF16 flow): ``Number of operators in
  the model: N``, ``GOPs of the model: G``, ``Number of operators offloaded by VAIML: n (p%)``, ``GOPs offloaded by
  VAIML: g (p%)``. The only place GOPs are reported.

Sources (checked 2026; keys change between Ryzen AI releases, so the list below is the union of the documented ones):

* Ryzen AI docs, "Model Compilation and Deployment" (https://ryzenai.docs.amd.com/en/latest/modelrun.html, 1.4+):
  ``config_file``, ``xclbin``, ``cache_dir``, ``cache_key``, ``encryptionKey``; "Operator Assignment Report" section
  (``vitisai_ep_report.json``, ``deviceStat``). Releases up to 1.3 (github.com/amd/ryzen-ai-documentation,
  ``docs/modelrun.rst``): ``config_file``, ``cacheDir``, ``cacheKey``, ``encryptionKey``.
* Ryzen AI docs, "AI Analyzer" (``docs/ai_analyzer.rst``): ``ai_analyzer_visualization``, ``ai_analyzer_profiling``.
* ONNX Runtime's VitisAI EP page, updated by github.com/microsoft/onnxruntime/pull/24739: ``cacheDir`` →
  ``cache_dir``, ``cacheKey`` → ``cache_key``, adds ``log_level``.
* github.com/amd/RyzenAI-SW examples: ``target`` (``X1``, ``X2``, ``VAIML``), ``enable_cache_file_io_in_mem`` (``0``
  keeps the cache, and so the report, on disk).
* Vitis AI docs, "Compiled Model Output" (https://vitisai.docs.amd.com/projects/gen2/en/latest/docs/model_compilation/
  output.html): ``final-vaiml-pass-summary.txt`` in ``cache_dir/cache_key``.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlparity.errors import ArtefactError, UsageError, VlparityError

VITISAI = "VitisAIExecutionProvider"
DEFAULT_MAX_NPU_FALLBACK = 0.05  # rule: a vision encoder whose NPU run leaves more than 1 op in 20 on the CPU is not
#                                  the deployment being validated; raise it per model with --max-npu-fallback

# The provider-option keys each EP documents (see the module docstring for where each comes from). Only providers
# listed here are checked: CPU and CUDA take a fixed, validated set of options inside ORT itself.
PROVIDER_OPTION_KEYS: dict[str, frozenset[str]] = {
    VITISAI: frozenset(
        {
            "config_file",
            "xclbin",
            "target",
            "cache_dir",
            "cache_key",
            "cacheDir",  # Ryzen AI ≤ 1.3 spelling (LEGACY_KEYS), still in AMD's examples
            "cacheKey",  # idem
            "encryptionKey",
            "enable_cache_file_io_in_mem",
            "log_level",
            "ai_analyzer_visualization",
            "ai_analyzer_profiling",
        }
    )
}

LEGACY_KEYS = frozenset({"cacheDir", "cacheKey"})  # accepted, but never suggested over the current spelling
REPORT_JSON = "vitisai_ep_report.json"
VAIML_SUMMARIES = ("final-vaiml-pass-summary.txt", "preliminary-vaiml-pass-summary.txt")  # final wins
ALL = "all"
NPU = "NPU"
NPU_DEVICES = frozenset({"NPU", "DPU", "VAIML", "AIE"})  # what the reports have called the NPU across releases
GOPS_UNIT = "gops"
OPS_UNIT = "ops"


class ProviderOptionError(UsageError):
    """An ``--ep-option`` key the execution provider does not know (it would be ignored silently)."""


class PlacementReportError(ArtefactError):
    """The EP compiler's placement report exists but cannot be read or does not have the documented fields."""


class NpuFallbackError(VlparityError):
    """Too much of the model was placed on the CPU instead of the NPU (``--max-npu-fallback``)."""


def check_provider_options(provider: str, options: dict[str, str]) -> None:
    """Refuse an option key ``provider`` does not document, naming the closest known key: an unknown VitisAI key is
    ignored by the EP, so a typo (or the wrong case) silently changes what is compiled and where."""
    known = PROVIDER_OPTION_KEYS.get(provider)
    if known is None:
        return
    for key in options:
        if key in known:
            continue
        suggestion = _closest(key, known)
        hint = f"; did you mean {suggestion!r}?" if suggestion else "."
        raise ProviderOptionError(
            f"--ep-option {key}=…: {provider} has no option {key!r}{hint} Known keys: {', '.join(sorted(known))}. "
            "The EP ignores keys it does not know (the run would silently use its defaults); see docs/npu.md."
        )


def _closest(key: str, known: frozenset[str]) -> str | None:
    """The known key equal but for case and underscores, else difflib's nearest; legacy keys first so that the
    current spelling of the same key overwrites them."""
    by_folded = {
        name.lower().replace("_", ""): name for name in sorted(known, key=lambda name: name not in LEGACY_KEYS)
    }
    folded = key.lower().replace("_", "").replace("-", "")
    if folded in by_folded:
        return by_folded[folded]
    matches = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.6)
    return by_folded[matches[0]] if matches else None


@dataclass(frozen=True)
class Placement:
    """Where the EP compiler placed the model: operator counts per device (as the report names them, ``all`` the
    total), GOPs (``all`` and ``NPU``) where the report has them, and the op types with nodes on the CPU."""

    sources: tuple[str, ...]
    ops: dict[str, int]
    gops: dict[str, float] = field(default_factory=dict)
    cpu_op_types: dict[str, int] = field(default_factory=dict)  # op type → CPU nodes (0: listed, count unknown)

    def as_dict(self, max_fallback: float) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "ops": self.ops,
            "gops": self.gops,
            "ops_off_npu": fallback_fraction(self, OPS_UNIT),
            "gops_off_npu": fallback_fraction(self, GOPS_UNIT),
            "max_npu_fallback": max_fallback,
            "cpu_op_types": self.cpu_op_types,
        }


def describe_cpu_ops(cpu_op_types: dict[str, int]) -> str:
    """``Erf ×12, Softmax ×1``, most nodes first (a name alone where the report listed the type without counts)."""
    if not cpu_op_types:
        return "op types not reported"
    ranked = sorted(cpu_op_types.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} ×{count}" if count else name for name, count in ranked)


def fallback_fraction(placement: Placement, unit: str = OPS_UNIT) -> float | None:
    """Share of the model (operators or GOPs) not on the NPU, in [0, 1]; None when the report lacks that unit.

    The total is the report's ``all`` entry, else the sum of the devices; a report without an NPU entry placed nothing
    there (fraction 1). Counts that disagree (the compiler duplicates Q/DQ nodes) are clamped rather than trusted."""
    values: dict[str, float] = dict(placement.ops) if unit == OPS_UNIT else dict(placement.gops)
    if not values:
        return None
    total = values.get(ALL, sum(value for name, value in values.items() if name != ALL))
    if total <= 0:
        return 0.0
    on_npu = sum(value for name, value in values.items() if name in NPU_DEVICES)
    return min(1.0, max(0.0, (total - on_npu) / total))


def judge_placement(placement: Placement, max_fallback: float) -> None:
    """Fail when more than ``max_fallback`` of the operators, or of the GOPs, is off the NPU."""
    ops = fallback_fraction(placement, OPS_UNIT)
    gops = fallback_fraction(placement, GOPS_UNIT)
    over = [(unit, value) for unit, value in (("operators", ops), ("GOPs", gops)) if value is not None]
    if not any(value > max_fallback for _, value in over):
        return
    shares = ", ".join(f"{value:.1%} of the {unit}" for unit, value in over)
    raise NpuFallbackError(
        f"{', '.join(placement.sources)}: VitisAI left {shares} off the NPU (--max-npu-fallback {max_fallback:g}); "
        f"on the CPU: {describe_cpu_ops(placement.cpu_op_types)}. The run would measure a mostly-CPU deployment: "
        "replace or quantize the unsupported operators (docs/npu.md), or raise --max-npu-fallback to accept it."
    )


def report_directory(options: dict[str, str], model_path: Path) -> Path:
    """``<cache_dir>/<cache_key>`` as the EP resolves it: the options (either spelling), else the documented defaults
    (``C:\\temp\\<user>\\vaip\\.cache`` or ``/tmp/<user>/vaip/.cache``; key: the model file's MD5)."""
    cache_dir = options.get("cache_dir") or options.get("cacheDir")
    cache_key = options.get("cache_key") or options.get("cacheKey")
    if cache_dir is None:
        root = Path("C:/temp") if os.name == "nt" else Path("/tmp")
        cache_dir = str(root / getpass.getuser() / "vaip" / ".cache")
    if cache_key is None:
        cache_key = _md5(model_path)
    return Path(cache_dir) / cache_key


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_placement(directory: Path) -> Placement | None:
    """The placement the EP reported in ``directory`` (None when it wrote no report there): operator counts and CPU op
    types from ``vitisai_ep_report.json``, GOPs (and counts, if there is no JSON report) from the VAIML summary."""
    report = directory / REPORT_JSON
    summary = next((directory / name for name in VAIML_SUMMARIES if (directory / name).exists()), None)
    from_json = parse_placement_report(report) if report.exists() else None
    from_summary = parse_placement_report(summary) if summary else None
    if from_json and from_summary:
        return Placement(
            sources=(*from_json.sources, *from_summary.sources),
            ops=from_json.ops,
            gops=from_summary.gops,
            cpu_op_types=from_json.cpu_op_types,
        )
    return from_json or from_summary


def parse_placement_report(path: Path) -> Placement:
    """Parse one placement report: ``vitisai_ep_report.json`` or a VAIML pass summary (``*.txt``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot be read ({exc})") from exc
    if path.suffix.lower() == ".json":
        return _parse_json_report(path, text)
    if path.suffix.lower() == ".txt":
        return _parse_vaiml_summary(path, text)
    raise _bad(path, f"is neither {REPORT_JSON} nor a VAIML pass summary (.txt)")


def _bad(path: Path, problem: str) -> PlacementReportError:
    return PlacementReportError(
        f"{path}: the VitisAI placement report {problem}. Delete that cache directory ({path.parent}) so that the EP "
        "compiles the model again and rewrites its report, then rerun."
    )


def _parse_json_report(path: Path, text: str) -> Placement:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(path, f"is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    devices = data.get("deviceStat") if isinstance(data, dict) else None
    if not isinstance(devices, list) or not devices:
        raise _bad(path, 'has no "deviceStat" list')
    ops: dict[str, int] = {}
    listed_on_cpu: list[str] = []
    for index, entry in enumerate(devices):
        name = entry.get("name") if isinstance(entry, dict) else None
        count = entry.get("nodeNum") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _is_count(count):
            raise _bad(path, f'has a deviceStat[{index}] without a "name" string and a "nodeNum" count ≥ 0')
        ops[name] = ops.get(name, 0) + count
        if name == "CPU":
            listed_on_cpu.extend(_op_name(op) for op in entry.get("supportedOpType") or [] if isinstance(op, str))
    nodes = data.get("nodeStat")
    per_node = Counter(
        _op_name(node["opType"])
        for node in nodes or []
        if isinstance(node, dict) and node.get("device") == "CPU" and isinstance(node.get("opType"), str)
    )
    cpu_op_types = dict(per_node) if per_node else dict.fromkeys(listed_on_cpu, 0)
    return Placement(sources=(str(path),), ops=ops, cpu_op_types=cpu_op_types)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _op_name(op_type: str) -> str:
    """``::Add`` → ``Add``; a custom domain stays (``com.microsoft::FusedMatMul``)."""
    return op_type.removeprefix("::")


_SUMMARY_LINES = {
    ("ops", ALL): r"Number of operators in the model:\s*(\d+)",
    ("ops", NPU): r"Number of operators offloaded by VAIML:\s*(\d+)",
    ("gops", ALL): r"GOPs of the model:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)",
    ("gops", NPU): r"GOPs offloaded by VAIML:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)",
}


def _parse_vaiml_summary(path: Path, text: str) -> Placement:
    found = {key: re.search(pattern, text) for key, pattern in _SUMMARY_LINES.items()}
    missing = [_SUMMARY_LINES[key].split(":")[0] for key in (("ops", ALL), ("ops", NPU)) if not found[key]]
    if missing:
        raise _bad(path, f"has no {' / '.join(repr(line) for line in missing)} line")
    ops = {device: int(match.group(1)) for (unit, device), match in found.items() if unit == "ops" and match}
    gops = {device: float(match.group(1)) for (unit, device), match in found.items() if unit == "gops" and match}
    if len(gops) == 1:  # one of the two GOPs lines alone gives no share
        gops = {}
    return Placement(sources=(str(path),), ops=ops, gops=gops)
