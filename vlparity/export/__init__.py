"""Writers that turn the source model into deployable artefacts (split checkpoints, later ONNX)."""
