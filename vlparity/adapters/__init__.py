"""One adapter per supported model family; ``adapter_for`` picks it from the checkpoint's ``model_type``."""

from __future__ import annotations

from vlparity.adapters.base import FamilyAdapter
from vlparity.adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from vlparity.adapters.qwen2_vl import Qwen2_VLAdapter
from vlparity.adapters.qwen3_vl import Qwen3_VLAdapter
from vlparity.errors import UnsupportedModelError

ADAPTERS: dict[str, type[FamilyAdapter]] = {
    cls.model_type: cls for cls in (Qwen2_5_VLAdapter, Qwen2_VLAdapter, Qwen3_VLAdapter)
}


def adapter_for(model_type: str, source: str = "the model") -> FamilyAdapter:
    try:
        return ADAPTERS[model_type]()
    except KeyError:
        raise UnsupportedModelError(
            f"{source}: architecture model_type={model_type!r} is not supported. "
            f"Supported: {', '.join(sorted(ADAPTERS))}. Pass a checkpoint of one of these families (a new family "
            "needs an adapter in vlparity/adapters/)."
        ) from None


__all__ = ["ADAPTERS", "FamilyAdapter", "adapter_for"]
