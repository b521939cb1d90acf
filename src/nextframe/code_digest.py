"""A digest of the code that made an output, for the resume records stages keep.

A stage that resumes from its own earlier output (``persist: true`` in dvc.yaml) must not
reuse what older code made: DVC reruns the stage because a source file changed, and a
resume record keyed only on inputs and params would hand back the old results. Hashing
the source of the modules that decide an output's content makes any change to them
(a fix of a rule, a new default) redo the work, and keeps the record the same on every
machine (the bytes of the files, not paths or times).
"""

from __future__ import annotations

import hashlib
from types import ModuleType


def code_digest(*modules: ModuleType) -> str:
    """sha256 (first 16 hex digits) of the modules' source files, in the order given."""
    digest = hashlib.sha256()
    for module in modules:
        if module.__file__ is None:
            raise ValueError(f"module {module.__name__} has no source file to hash")
        with open(module.__file__, "rb") as handle:
            source = handle.read()
        digest.update(f"{module.__name__}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.hexdigest()[:16]
