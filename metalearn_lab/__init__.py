"""metalearn-lab: a small, tested helper library for lessons on meta-learning and fast learning."""

from metalearn_lab.paths import is_quick

__version__ = "0.1.0"
__all__ = ["is_quick", "__version__"]
