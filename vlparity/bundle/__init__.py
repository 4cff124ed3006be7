"""Standalone bundles: a model split into a vision half that needs only onnxruntime, numpy and Pillow, and a language
half that needs only torch and transformers, each with a script, so a deployment can run without vlparity.

Layout written by :func:`build_bundle` (atomically, with a manifest)::

    vision/    vision.onnx, preprocess.json, vision_inference.py, requirements.txt
    language/  config.json, generation_config.json, model.safetensors (or the AWQ checkpoint), tokenizer files,
               chat_template.jinja, language_inference.py, requirements.txt
    README.md  the exact commands
"""

from vlparity.bundle.builder import BUNDLE_KIND, build_bundle

__all__ = ["BUNDLE_KIND", "build_bundle"]
