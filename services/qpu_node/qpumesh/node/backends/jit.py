"""The numba decorators of the node's kernels, cached on disk under a stamp of ALL their sources.

numba's on-disk cache (``cache=True``) decides whether a saved machine-code file is still
valid from the source file of the cached function alone. The node's kernels call one
another across modules (``wide_kernels`` inlines ``wide_gates``, ``wide_moves``,
``wide_terms``, ``product_state``; ``adjoint_kernels`` inlines ``kernels``), and a caller's
saved code contains its callees: with numba's own stamp, editing only a callee's module
leaves the caller's stale code in use, and exact mode would silently compute with old
kernels after a ``git pull``. Here every kernel's cache is stamped with one digest of every
module of this package instead, so any change of any backend source recompiles them all
(the first request after an update pays the compilation, ``warm_up`` precompiles).

The decorators are otherwise numba's ``njit(cache=True, nogil=True)``: caches live where
numba puts them (``NUMBA_CACHE_DIR`` if set, as in the images, else ``__pycache__`` beside
the module, else numba's user-wide directory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numba import njit
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)

__all__ = ["inline", "jit", "sources_digest"]

def sources_digest(directory: Path = Path(__file__).parent) -> str:
    """Return the SHA-256 of every ``*.py`` file in ``directory`` (names and contents, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


_STAMP = sources_digest()


class _PackageStamp:
    """Locator mixin: the cache's freshness stamp is the digest of the whole package."""

    def get_source_stamp(self) -> str:
        return _STAMP


class _UserProvided(_PackageStamp, UserProvidedCacheLocator):  # type: ignore[misc]
    """``NUMBA_CACHE_DIR``, package-stamped."""


class _InTree(_PackageStamp, InTreeCacheLocator):  # type: ignore[misc]
    """``__pycache__`` beside the module, package-stamped."""


class _UserWide(_PackageStamp, UserWideCacheLocator):  # type: ignore[misc]
    """numba's user-wide cache directory, package-stamped."""


class _Impl(CompileResultCacheImpl):  # type: ignore[misc]
    # numba's CacheImpl tries these in order (its own list, with package-stamped locators).
    _locator_classes = [_UserProvided, _InTree, _UserWide]  # noqa: RUF012


class _PackageCache(FunctionCache):  # type: ignore[misc]
    _impl_class = _Impl


def _kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Return a decorator: ``njit(nogil=True, **options)`` with the package-stamped cache.

    The result is numba's dispatcher (untyped, like the kernels: compiled per dtype).
    """

    def decorate(function: Callable[..., Any]) -> Any:
        dispatcher = njit(nogil=True, **options)(function)
        # What njit(cache=True) does (Dispatcher.enable_caching), with the package's stamp.
        dispatcher._cache = _PackageCache(dispatcher.py_func)  # type: ignore[no-untyped-call]
        return dispatcher

    return decorate


jit = _kernel()
"""A compiled kernel: ``njit(nogil=True)``, cached on disk under the package's stamp."""

# Leaf helpers with one array argument are inlined: a call with array arguments costs
# tens of nanoseconds (reference counting), more than a gate on a small register.
inline = _kernel(inline="always")
"""A compiled helper inlined into its callers (``inline="always"``), same cache."""
