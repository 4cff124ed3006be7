"""Pure comparison functions on arrays (no models, no I/O) and the rules that turn them into verdicts."""
