"""One module per algorithm: its config fields, how to build, step and evaluate it (see ``registry.py``)."""
