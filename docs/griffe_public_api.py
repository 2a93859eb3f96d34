"""A griffe extension for the API reference: signatures name only what a user can import.

mkdocs loads it through mkdocstrings (`extensions:` in mkdocs.yml); it is not part of the
site. mkdocstrings' own options do the rest (`merge_init_into_class: false` where a
constructor takes a private type, `overloads_only`, `show_bases: false`). This extension does
what no option can:

- A pytest fixture shows its decorator as a label (`pytest.fixture(scope="session")`), the
  private fixtures it requests (`_hosted_api_pool`) and pytest's `request` are left out of its
  signature, and its return type is what a test gets (`str`, not `Iterator[str]`).
- A type alias that no public module exports (`SettingsOverride`, `SettingValues`) is replaced
  by its definition in annotations.
- A parameter whose default is a private constant shows the constant's value when it is a
  literal (`io_grace=IO_GRACE` reads `io_grace=2.0`), else `...`, as an overload would
  (`default=_MISSING`, a sentinel, reads `default=...`).
- An instance attribute shows its type and docstring, not the expression that `__init__`
  assigns (`url_for(supervisor.spec.connect_host, ...)` means nothing outside it).

"Private": not the target of a name in the `__all__` of a public module (one whose dotted
path has no part starting with `_`).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import griffe

_FIXTURE = frozenset({"pytest.fixture", "_pytest.fixtures.fixture"})
_ALIAS_FORMS = (griffe.ExprName, griffe.ExprSubscript, griffe.ExprBinOp)


def _private_path(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            yield from _objects(member)


def _rewrite(expr: Any, name_fn: Callable[[griffe.ExprName], Any]) -> Any:
    """A copy of `expr` with every name passed through `name_fn` (the original is shared)."""
    if isinstance(expr, griffe.ExprName):
        return name_fn(expr)
    if isinstance(expr, list | tuple):
        items = [_rewrite(item, name_fn) for item in expr]
        changed = any(new is not old for new, old in zip(items, expr, strict=True))
        return type(expr)(items) if changed else expr
    if isinstance(expr, griffe.Expr) and dataclasses.is_dataclass(expr):
        changes = {}
        for field in dataclasses.fields(expr):
            if field.init:
                old = getattr(expr, field.name)
                new = _rewrite(old, name_fn)
                if new is not old:
                    changes[field.name] = new
        return dataclasses.replace(expr, **changes) if changes else expr
    return expr


# Private aliases typed loosely for the type checker (Mapping keys are invariant, so a
# `dict[str, str]` is no `Mapping[Setting | str, Any]`), shown as what the guide says they take.
_SHOWN_AS = {
    "settings_override._override.SettingValues": "Mapping[Setting | str, Any]",
    "settings_override._override.SettingKey": "Setting | str",
}

_GENERATORS = frozenset({"Iterator", "Generator", "AsyncIterator", "AsyncGenerator"})


def _yielded(returns: Any) -> Any:
    """What a test gets from a yield fixture: `Iterator[str]` (or `Generator[str, ...]`): `str`."""
    generator = isinstance(returns, griffe.ExprSubscript) and (
        str(returns.left).split(".")[-1] in _GENERATORS
    )
    if generator:
        value = returns.slice
        if isinstance(value, griffe.ExprTuple):
            return value.elements[0]
        return value
    return returns


class PublicAPI(griffe.Extension):
    """See the module docstring."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        public = self._public_targets(pkg)
        for obj in _objects(pkg):
            if isinstance(obj, griffe.Function):
                self._function(obj, public)
            elif isinstance(obj, griffe.Attribute):
                if "instance-attribute" in obj.labels:
                    obj.value = None
                if isinstance(obj.annotation, griffe.Expr):
                    obj.annotation = self._expand(obj.annotation, public)

    @staticmethod
    def _public_targets(pkg: griffe.Module) -> set[str]:
        targets: set[str] = set()
        for obj in _objects(pkg):
            if isinstance(obj, griffe.Module) and not _private_path(obj.path):
                for name in obj.exports or ():
                    member = obj.members.get(str(name))
                    if member is not None:
                        targets.add(member.target_path if member.is_alias else member.path)
        return targets

    def _lookup(self, name: griffe.ExprName, public: set[str]) -> griffe.Attribute | None:
        """The private, unexported module-level attribute a name stands for, if it is one."""
        path = name.canonical_path
        if path in public or "." not in path:
            return None
        try:
            obj = name.parent.modules_collection.get_member(path)  # type: ignore[union-attr]
        except Exception:
            return None
        if obj.is_alias:
            obj = obj.final_target
        if isinstance(obj, griffe.Attribute) and obj.parent is not None and obj.parent.is_module:
            return obj
        return None

    def _expand(self, expr: Any, public: set[str], depth: int = 0) -> Any:
        """Replace private type aliases by their definitions (parsed as annotations)."""

        def name_fn(name: griffe.ExprName) -> Any:
            alias = self._lookup(name, public)
            # An alias is a name, a subscript or a union; a call (`TypeVar("T")`) is a new type.
            if alias is None or depth > 5 or not isinstance(alias.value, _ALIAS_FORMS):
                return name
            node = ast.parse(_SHOWN_AS.get(alias.path, str(alias.value)), mode="eval").body
            scope = alias.parent
            assert isinstance(scope, griffe.Module)
            definition = griffe.get_expression(node, scope, parse_strings=True)
            return self._expand(definition, public, depth + 1)

        return _rewrite(expr, name_fn)

    def _readable_default(self, default: Any, public: set[str]) -> Any:
        """A private constant's literal value instead of its name; `...` for a sentinel."""
        if not isinstance(default, griffe.ExprName):
            return default
        constant = self._lookup(default, public)
        if constant is None or constant.value is None:
            return default
        value = str(constant.value)
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return "..."  # a private sentinel (`_MISSING = object()`): "has a default"
        return value

    def _function(self, func: griffe.Function, public: set[str]) -> None:
        fixture = next((d for d in func.decorators if d.callable_path in _FIXTURE), None)
        if fixture is not None:
            func.labels.add(str(fixture.value))
            for parameter in list(func.parameters):
                if parameter.name.startswith("_") or parameter.name == "request":
                    del func.parameters[parameter.name]
            func.returns = _yielded(func.returns)
        for parameter in func.parameters:
            if isinstance(parameter.annotation, griffe.Expr):
                parameter.annotation = self._expand(parameter.annotation, public)
            parameter.default = self._readable_default(parameter.default, public)
        if isinstance(func.returns, griffe.Expr):
            func.returns = self._expand(func.returns, public)
