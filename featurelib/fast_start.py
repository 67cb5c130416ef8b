"""Feast starts in a third of the time: its run-time type checks are compiled when first used.

Feast decorates its definition classes (``FeatureView``, ``Entity``, ``FeatureService``,
``Field``, the data sources, ...) with typeguard's ``@typechecked``, which re-parses and
recompiles each of about 240 methods **when Feast is imported**: about 5 of the 8 seconds
``import feast`` takes on this 2-core machine, paid by every ``feast`` command,
``feature_utils.py`` command, ``feast serve`` worker and notebook kernel. A command uses a
handful of those methods.

``lazy_type_checks()`` makes typeguard compile each method on its first call instead. The
checks are the same (``FeatureView(name=3, ...)`` still raises ``TypeCheckError``); only
when they are compiled changes. It must run before typeguard's decorators module is
imported. ``feature_utils.py`` and this package's own commands call it first thing. For
everything else in an environment (the ``feast`` CLI, ``feast serve``, notebooks),
``python -m featurelib.fast_start install`` (which ``make`` runs) writes
``featurelib-fast-start.pth`` into its site-packages: Python runs it at start-up, and it
arranges for the change to apply when typeguard is first imported (about 4 ms at start-up,
nothing else until then). ``python -m featurelib.fast_start uninstall`` removes it.
"""

from __future__ import annotations

import sys

_MODULE = "typeguard._decorators"
# This module is imported at every interpreter start-up (by the .pth file): it imports
# nothing else until typeguard is imported, and annotates with builtins only.


def _lazy(instrument):
    """An ``instrument`` that returns a stand-in compiling the real one on its first call."""
    import functools
    import inspect

    def lazy_instrument(f):
        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            return instrument(f)  # a stand-in would change what the function is
        compiled: list = []

        def target():
            if not compiled:
                try:
                    result = instrument(f)
                except Exception:  # its module or source is gone: run it unchecked rather than fail
                    result = f
                compiled.append(result if inspect.isfunction(result) else f)  # a str: not instrumentable
            return compiled[0]

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def checked_async(*args, **kwargs):
                return await target()(*args, **kwargs)

            return checked_async

        @functools.wraps(f)
        def checked(*args, **kwargs):
            return target()(*args, **kwargs)

        return checked

    lazy_instrument._featurelib = True  # type: ignore[attr-defined]
    return lazy_instrument


def lazy_type_checks() -> bool:
    """Make typeguard compile ``@typechecked`` methods on first use; True when in place.

    Has no effect on classes decorated before the call: call it before importing Feast."""
    from typeguard import _decorators

    if not getattr(_decorators.instrument, "_featurelib", False):
        _decorators.instrument = _lazy(_decorators.instrument)
    return True


class _PatchWhenImported:
    """Applies ``lazy_type_checks`` right after typeguard's decorators module is executed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name != _MODULE:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: object) -> None:
            execute(module)
            module.instrument = _lazy(module.instrument)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_import_hook() -> None:
    """Arrange for ``lazy_type_checks`` to apply when typeguard is first imported (or now,
    if it already is). Called at interpreter start-up by ``featurelib-fast-start.pth``."""
    if _MODULE in sys.modules:
        lazy_type_checks()
    elif not any(isinstance(f, _PatchWhenImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchWhenImported())


PTH_NAME = "featurelib-fast-start.pth"
PTH_LINE = "import featurelib.fast_start; featurelib.fast_start.install_import_hook()\n"


def pth_path():
    """Where ``install`` writes the start-up file: this environment's site-packages."""
    import sysconfig
    from pathlib import Path

    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def main(argv: list[str]) -> int:
    if argv not in (["install"], ["uninstall"]):
        print("usage: python -m featurelib.fast_start install|uninstall", file=sys.stderr)
        return 2
    path = pth_path()
    if argv == ["install"]:
        path.write_text(PTH_LINE)
        print(f"wrote {path}: Feast compiles its type checks on first use in this environment")
    else:
        path.unlink(missing_ok=True)
        print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
