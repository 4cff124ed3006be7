"""Runtimes other than torch that paths run on (ONNX Runtime sessions with execution-provider control)."""
