"""The kernels' on-disk cache is stamped with every backend source, not only the kernel's own file.

numba's own stamp would keep a caller's cached machine code (which contains its inlined
callees from other modules) after only a callee's module changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from qpumesh.node.backends import jit, kernels, wide_gates, wide_kernels

BACKENDS = Path(jit.__file__).parent


def _stamp(dispatcher: object) -> object:
    return dispatcher._cache._impl.locator.get_source_stamp()  # type: ignore[attr-defined]


def test_every_kernel_module_is_stamped_with_the_package_digest() -> None:
    digest = jit.sources_digest()
    kernels_of = [
        getattr(module, name)
        for module in (kernels, wide_gates, wide_kernels)
        for name in dir(module)
        if hasattr(getattr(module, name), "_cache") and getattr(module, name)._cache is not None
    ]
    assert len(kernels_of) >= 10
    assert {_stamp(k) for k in kernels_of} == {digest}


def test_changing_any_backend_module_changes_the_stamp(tmp_path: Path) -> None:
    copy = tmp_path / "backends"
    shutil.copytree(BACKENDS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = jit.sources_digest(copy)
    assert before == jit.sources_digest()
    # A callee-only edit (wide_gates is inlined into wide_kernels) must change every stamp.
    callee = copy / "wide_gates.py"
    callee.write_text(callee.read_text() + "\n# edited\n")
    assert jit.sources_digest(copy) != before

