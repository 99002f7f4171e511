"""The segmenter registry: every model `bench run` can evaluate, by name.

Three ways in, one table:

- built-ins register with ``@register_segmenter("name")`` in `catseg_bench.segmenters`;
- installed packages declare an entry point in the group ``catseg_bench.segmenters``
  (``name = "pkg.module:Class"`` in their pyproject's ``[project.entry-points."catseg_bench.segmenters"]``);
- ``module:Class`` names any importable class for a one-off run, without registering it.

A segmenter class is built by calling its constructor with the run-context keywords it declares
(:data:`RUN_CONTEXT`: ``device``, ``precision``, ``checkpoint``, ``mode``, ``seed``) and the user's
``--model-args``, converted to the types its other parameters are annotated with. Listing the
registry imports no model code: built-in modules import torch only when a segmenter is built, and
plugins are imported only when one of theirs is asked for.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from catseg_bench.errors import BenchError
from model.common.files import user_path

ENTRY_POINT_GROUP = "catseg_bench.segmenters"
# Options of `bench run` that a segmenter receives when its constructor has a parameter of that name.
RUN_CONTEXT = ("device", "precision", "checkpoint", "mode", "seed")
BUILTIN_MODULES = (
    "catseg_bench.segmenters.catseg",
    "catseg_bench.segmenters.san",
    "catseg_bench.segmenters.zsseg",
    "catseg_bench.segmenters.ovseg",
    "catseg_bench.segmenters.zegformer",
    "catseg_bench.segmenters.random",
    "catseg_bench.segmenters.predictions",
    "catseg_bench.segmenters.training_free",
    "catseg_bench.segmenters.grounded_sam",
)


@dataclass(frozen=True)
class Parameter:
    """A constructor argument a user sets with ``--model-args name=value``."""

    name: str
    annotation: str
    default: Any  # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        return f"{self.name}: {self.annotation}" + ("" if self.required else f" = {self.default!r}")


@dataclass(frozen=True)
class SegmenterEntry:
    """One registered name: the class that builds it, the arguments the name fixes, where it came from."""

    name: str
    target: str  # "module:Class"
    source: str  # "built-in", "package <dist> <version>", or "registered by <module>"
    description: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)  # e.g. catseg-b -> {"variant": "catseg-b"}
    factory: Callable[..., Any] | None = None  # None for an entry point not loaded yet

    def load(self) -> Callable[..., Any]:
        return self.factory if self.factory is not None else load_target(self.target, f"entry point '{self.name}'")

    def summary(self) -> str:
        """The description, else the first line of the class's docstring (an entry point's class is
        loaded for it)."""
        return self.description or doc_summary(self.load())

    def parameters(self) -> list[Parameter]:
        return user_parameters(self.load(), exclude=set(self.fixed))

    def weights(self) -> list[str]:
        """The weights tags `--checkpoint` accepts (the first is the default), when the class lists
        them through an optional ``weights_tags(**fixed)`` static method."""
        lister = getattr(self.load(), "weights_tags", None)
        return list(lister(**self.fixed)) if callable(lister) else []

    def weights_licences(self) -> dict[str, str]:
        """Tag -> licence of the published weights, when the class gives them through an optional
        ``weights_licences(**fixed)`` static method."""
        lister = getattr(self.load(), "weights_licences", None)
        return dict(lister(**self.fixed)) if callable(lister) else {}

    def run_options(self) -> list[str]:
        """The `bench run` options (of :data:`RUN_CONTEXT`) this segmenter takes."""
        accepted = _signature(self.load()).parameters
        return [name for name in RUN_CONTEXT if name in accepted]


_REGISTERED: dict[str, SegmenterEntry] = {}
_builtins_loaded = False


def register_segmenter(name: str, *, description: str = "", **fixed: Any) -> Callable[[type], type]:
    """Class decorator: make ``bench run --model NAME`` build this class (with ``fixed`` arguments).

    The same class may be registered under several names with different fixed arguments.
    """

    def decorate(cls: type) -> type:
        previous = _REGISTERED.get(name)
        target = f"{cls.__module__}:{cls.__qualname__}"
        if previous is not None and (previous.target, dict(previous.fixed)) != (target, fixed):
            raise BenchError(f"segmenter name '{name}' is registered twice ({previous.target} and {target}); rename one")
        source = "built-in" if cls.__module__ in BUILTIN_MODULES else f"registered by {cls.__module__}"
        _REGISTERED[name] = SegmenterEntry(name, target, source, description or doc_summary(cls), dict(fixed), cls)
        return cls

    return decorate


def doc_summary(factory: Callable[..., Any]) -> str:
    """The first line of a class's (or factory's) docstring; "" when it has none."""
    return (inspect.getdoc(factory) or "").split("\n")[0]


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def available_segmenters() -> dict[str, SegmenterEntry]:
    """Every registered name: built-ins, then installed packages' entry points (not imported)."""
    _load_builtins()
    # Built-ins in BUILTIN_MODULES order whatever imported them first, then in-process registrations.
    rank = {module: index for index, module in enumerate(BUILTIN_MODULES)}
    ordered = sorted(_REGISTERED.values(), key=lambda e: rank.get(e.target.partition(":")[0], len(rank)))
    entries = {entry.name: entry for entry in ordered}
    for ep in _entry_points():
        if ep.name in entries:
            continue  # a package cannot shadow a built-in or an in-process registration
        dist = ep.dist
        source = f"package {dist.name} {dist.version}" if dist is not None else "package"
        entries[ep.name] = SegmenterEntry(ep.name, ep.value, source)
    return entries


def load_target(target: str, what: str) -> Callable[..., Any]:
    """The class (or factory) ``module:attribute`` names; one line naming the fix when it cannot be loaded."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise BenchError(f"{what}: '{target}' is not of the form module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BenchError(f"{what}: cannot import module '{module_name}' ({err}); install it or add it to PYTHONPATH") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise BenchError(f"{what}: module '{module_name}' has no attribute '{attribute}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BenchError(f"{what}: '{target}' is not a class or callable")
    return obj


def find_segmenter(model: str) -> SegmenterEntry:
    """The entry for a registered name, or an unregistered entry for ``module:Class``."""
    entries = available_segmenters()
    if model in entries:
        return entries[model]
    if ":" in model:
        factory = load_target(model, f"--model {model}")
        return SegmenterEntry(model, model, "module:Class", doc_summary(factory), {}, factory)
    raise BenchError(
        f"--model {model}: unknown model; choose one of {', '.join(entries)} (see `bench models list`), "
        "or give module:Class"
    )


def _signature(factory: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError) as err:
        raise BenchError(f"{getattr(factory, '__qualname__', factory)}: cannot read its constructor's signature ({err})") from None


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable string annotations: fall back to what inspect shows
        return {}


def user_parameters(factory: Callable[..., Any], exclude: set[str] = frozenset()) -> list[Parameter]:
    """The constructor arguments that ``--model-args`` can set (run context and fixed ones excluded)."""
    hints = _hints(factory)
    out = []
    for p in _signature(factory).parameters.values():
        if p.name in RUN_CONTEXT or p.name in exclude or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, p.annotation)
        out.append(Parameter(p.name, _type_name(annotation), p.default))
    return out


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "str"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def parse_model_args(text: str | None) -> dict[str, str]:
    """``key=value[,key=value...]`` -> {key: value}; a value may hold '=' but not ','."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--model-args {text!r}: '{item}' is not key=value; write e.g. threshold=0.5,clip=ViT-B-16")
        if key in out:
            raise BenchError(f"--model-args {text!r}: '{key}' is given twice")
        out[key] = value.strip()
    return out


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """A --model-args string as the annotated type (int, float, bool, Path, str, Optional/Union of those)."""
    if not isinstance(value, str) or annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if type(None) in typing.get_args(annotation) and value.lower() in ("none", "null"):
            return None
        for option in options:
            try:
                return _convert(value, option, where)
            except BenchError:
                continue
        raise BenchError(f"{where}={value!r}: expected {_type_name(annotation)}")
    if annotation is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise BenchError(f"{where}={value!r}: expected true or false")
    if annotation in (int, float):
        try:
            return annotation(value)
        except ValueError:
            raise BenchError(f"{where}={value!r}: expected {annotation.__name__}") from None
    if annotation is Path:
        return user_path(value)
    return value


def build_segmenter(model: str, model_args: Mapping[str, Any] | None = None, **run_context: Any):
    """Build the segmenter `model` names (a registered name or ``module:Class``).

    ``run_context`` holds the values of :data:`RUN_CONTEXT`; each is passed only when the
    constructor has a parameter of that name. ``model_args`` (strings from the command line, or
    Python values) fill the constructor's other parameters; an unknown key is an error listing the
    accepted ones, and so is a run option the segmenter cannot take (e.g. ``--checkpoint`` for a
    model without weights).
    """
    unknown_context = set(run_context) - set(RUN_CONTEXT)
    if unknown_context:
        raise TypeError(f"build_segmenter: unknown run options {sorted(unknown_context)}")
    entry = find_segmenter(model)
    factory = entry.load()
    signature = _signature(factory)
    accepts = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepts.values())
    args = dict(model_args or {})
    allowed = {p.name for p in user_parameters(factory, exclude=set(entry.fixed))}
    bad = [key for key in args if key not in allowed and not takes_any]
    if bad:
        listed = ", ".join(p.describe() for p in entry.parameters()) or "none"
        raise BenchError(f"--model-args {', '.join(bad)}: not an argument of {entry.name}; it accepts: {listed}")
    hints = _hints(factory)
    kwargs: dict[str, Any] = dict(entry.fixed)
    for key, value in args.items():
        kwargs[key] = _convert(value, hints.get(key, accepts[key].annotation if key in accepts else Any),
                               f"--model-args {key}")
    for key, value in run_context.items():
        if key in accepts or takes_any:
            kwargs[key] = value
        elif key == "checkpoint" and value is not None:
            raise BenchError(f"--checkpoint {value}: {entry.name} takes no checkpoint; drop --checkpoint")
    missing = [p.name for p in accepts.values()
               if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in kwargs]
    if missing:
        raise BenchError(f"--model {entry.name}: missing required --model-args {', '.join(missing)}")
    segmenter = factory(**kwargs)
    _check_protocol(segmenter, entry.name)
    return segmenter


def _check_protocol(segmenter: Any, name: str) -> None:
    from catseg_bench.segmenters import missing_members

    missing = missing_members(segmenter)
    if missing:
        raise BenchError(
            f"--model {name}: {type(segmenter).__qualname__} lacks {', '.join(missing)} of the Segmenter protocol "
            "(see README, 'Evaluate your own model')"
        )
