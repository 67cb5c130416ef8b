"""featurelib/fast_start.py: Feast's run-time type checks compiled on first use, same checks."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path

import pytest
from typeguard import TypeCheckError

from featurelib import fast_start
from tests.conftest import run


def _checked_class(tmp_path: Path, name: str):
    """A module with a @typechecked class, imported after the lazy instrument is in place."""
    source = textwrap.dedent('''
        from typeguard import typechecked

        @typechecked
        class Thing:
            def __init__(self, name: str):
                self.name = name

            async def later(self, n: int) -> int:
                return n

            def numbers(self, n: int):
                yield from range(n)
    ''')
    (tmp_path / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        return __import__(name).Thing
    finally:
        sys.path.remove(str(tmp_path))


def test_checks_are_compiled_on_first_call_and_still_check(tmp_path: Path, monkeypatch) -> None:
    from typeguard import _decorators

    fast_start.lazy_type_checks()
    assert getattr(_decorators.instrument, "_featurelib", False)
    compiled = []
    real = _decorators.instrument
    monkeypatch.setattr(_decorators, "instrument", fast_start._lazy(lambda f: compiled.append(f.__name__) or real(f)))
    Thing = _checked_class(tmp_path, "lazy_thing")
    assert compiled == ["numbers"]  # generators are compiled at once: a stand-in would not be one
    assert Thing("a").name == "a" and compiled == ["numbers", "__init__"]
    with pytest.raises(TypeCheckError, match='"name"'):
        Thing(3)
    assert compiled.count("__init__") == 1  # compiled once
    assert inspect.iscoroutinefunction(Thing.later) and inspect.isgeneratorfunction(Thing.numbers)
    assert list(inspect.signature(Thing.__init__).parameters) == ["self", "name"]
    sys.modules.pop("lazy_thing")


def test_feast_imported_with_the_hook_keeps_its_checks(tmp_path: Path) -> None:
    script = """
import json, sys
from featurelib.fast_start import install_import_hook
install_import_hook()
from feast import Entity
from typeguard import TypeCheckError, _decorators
try:
    Entity(name=3, join_keys=["id"])
    raised = False
except TypeCheckError:
    raised = True
print(json.dumps({"lazy": getattr(_decorators.instrument, "_featurelib", False), "raised": raised,
                  "entity": Entity(name="card", join_keys=["card_id"]).name}))
"""
    out = json.loads(run([sys.executable, "-c", script], tmp_path).stdout.strip().splitlines()[-1])
    assert out == {"lazy": True, "raised": True, "entity": "card"}


def test_install_writes_and_uninstall_removes_the_startup_file(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / fast_start.PTH_NAME
    monkeypatch.setattr(fast_start, "pth_path", lambda: path)
    assert fast_start.main(["install"]) == 0
    assert path.read_text() == fast_start.PTH_LINE
    assert fast_start.main(["uninstall"]) == 0 and not path.exists()
    assert fast_start.main(["nope"]) == 2
