"""Every way of making a rollout, behind one interface (``base.Method``) and one registry.

This package's ``__init__`` imports no torch: ``nextframe.config`` reads the registry at start-up.
"""

from nextframe.methods.registry import REGISTRY, MethodInfo, load_class, method_names, register

__all__ = ["REGISTRY", "MethodInfo", "load_class", "method_names", "register"]
