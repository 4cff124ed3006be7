"""Quantizers: AWQ int4 for the language model (AutoAWQ), with the compatibility shims it needs kept in one place."""
