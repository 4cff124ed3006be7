"""One report model (``model.py``) and its renderings (terminal table, JSON); storage and rendering stay apart."""
