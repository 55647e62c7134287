"""A griffe extension: give `equinox.Module` subclasses their dataclass `__init__`.

Equinox modules are dataclasses created by a metaclass, so griffe's static analysis
(which only recognises `@dataclass`) sees no `__init__` and mkdocstrings shows no
signature. This rebuilds the signature from the annotated fields, in dataclass order
(parent fields first), reading defaults from `= value` and `eqx.field(default=...)`.
Classes that define their own `__init__` are left alone.
"""

from typing import Any

import griffe

_SYNTHETIC = 0  # the line number given to the `__init__` made here

_MODULE = ("equinox.Module", "equinox._module.Module", "equinox._module._module.Module")


def _bases(cls: griffe.Class) -> list[griffe.Class]:
    """The classes `cls` inherits from that griffe loaded (not external ones)."""
    out = []
    for base in cls.resolved_bases:
        if isinstance(base, griffe.Class):
            out.append(base)
    return out


def _is_module(cls: griffe.Class, seen: frozenset = frozenset()) -> bool:
    if cls.path in seen:
        return False
    if any(str(getattr(b, "canonical_path", b)) in _MODULE for b in cls.bases):
        return True
    return any(_is_module(b, seen | {cls.path}) for b in _bases(cls))


def _field_call_args(value: Any) -> dict[str, Any] | None:
    """The keyword arguments of `eqx.field(...)`, or None if `value` is not such a call."""
    if isinstance(value, griffe.ExprCall) and str(value.function).split(".")[-1] == "field":
        return {a.name: a.value for a in value.arguments if isinstance(a, griffe.ExprKeyword)}
    return None


def _own_fields(cls: griffe.Class) -> list[griffe.Parameter]:
    params = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "property" in member.labels or (
            "class-attribute" in member.labels and "instance-attribute" not in member.labels
        ):
            continue  # ClassVar or property: not a field
        args = _field_call_args(member.value)
        if args is not None:
            if str(args.get("init", "True")) == "False":
                continue
            default = args.get("default")
            if "default_factory" in args:
                default = griffe.ExprCall(function=args["default_factory"], arguments=[])
        else:
            default = member.value
        params.append(
            griffe.Parameter(
                member.name,
                annotation=member.annotation,
                kind=griffe.ParameterKind.positional_or_keyword,
                default=default,
                docstring=member.docstring,
            )
        )
    return params


def _fields(cls: griffe.Class, seen: frozenset = frozenset()) -> list[griffe.Parameter]:
    if cls.path in seen:
        return []
    params: dict[str, griffe.Parameter] = {}
    for base in reversed(_bases(cls)):
        for p in _fields(base, seen | {cls.path}):
            params[p.name] = p
    for p in _own_fields(cls):
        params[p.name] = p
    return list(params.values())


def _has_init(cls: griffe.Class, seen: frozenset = frozenset()) -> bool:
    """Whether `cls` or a base defines `__init__` in its source (not one made here)."""
    if cls.path in seen:
        return False
    init = cls.members.get("__init__")
    if init is not None and not init.is_alias and init.lineno != _SYNTHETIC:
        return True
    return any(_has_init(b, seen | {cls.path}) for b in _bases(cls))


class EquinoxFields(griffe.Extension):
    """Synthesise `__init__` for `equinox.Module` subclasses."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg, set())

    def _visit(self, obj: griffe.Object, done: set[str]) -> None:
        if obj.path in done:
            return
        done.add(obj.path)
        for member in list(obj.members.values()):
            if member.is_alias or not (member.is_module or member.is_class):
                continue
            self._visit(member, done)
        if isinstance(obj, griffe.Class) and _is_module(obj) and not _has_init(obj):
            init = griffe.Function(
                "__init__",
                lineno=_SYNTHETIC,
                endlineno=_SYNTHETIC,
                parent=obj,
                parameters=griffe.Parameters(
                    griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
                    *_fields(obj),
                ),
                returns="None",
            )
            obj.set_member("__init__", init)
