"""Installable fakes of the ROS 2 launch API (`launch`, `launch_ros`, `ament_index_python`) that run launch files.

    with install(prefixes=[install_prefix]) as fake:         # registers the real module names in sys.modules
        module = fake.load("launch/widowx_monkey.launch.py")  # imported by path, as `ros2 launch` does
        result = fake.run(module.generate_launch_description(), {"mode": "eval"})
        result.node("dsrl_real").parameters                   # evaluated like launch_ros evaluates them
        result.include("interbotix_xsarm_control").arguments  # what the driver's launch file receives

Every constructor call is bound to the real signature in `launch_api` (a misspelt keyword raises
`LaunchAPIMismatch`). `run` visits the description the way `ros2 launch` does: the top-level file is included with the
command-line arguments, and every include first runs launch's required-argument check (the rules and the
message are in `launch_api`, "what the real launch enforces": an included file's argument without default
must be passed by the include itself, not merely set on the command line); launch arguments
become launch configurations (an include's arguments are not scoped), declared arguments get their
defaults and choices are enforced, conditions accept only true/false/1/0, OpaqueFunctions run with a
context, and node parameters are normalised and evaluated with launch_ros's rules (plain values keep
their type, substitutions are read as YAML, empty lists are rejected); `LaunchedNode.command_line` gives
the arguments launch_ros would start the node with (`-r __node:=NAME` when `name=` is given). Packages are found like
ament_index finds them: a marker in `<prefix>/share/ament_index/resource_index/packages/`, executables
in `<prefix>/lib/<package>/`. Launch files of our own package are loaded and run; the upstream ones
in `launch_api.EXTERNAL_LAUNCH_FILES` are checked against what they declare and recorded.
"""

from __future__ import annotations

import collections.abc
import contextlib
import importlib.util
import itertools
import os
import pathlib
import re
import types
from dataclasses import dataclass, field
from typing import Any

import yaml

from fakes import launch_api as api
from fakes.modules import swapped

from .launch_api import LaunchAPIMismatch

EXTERNAL_SHARE_ROOT = "/nonexistent/fake_ros/share"  # where FindPackageShare puts packages we only model
MODULE_NAMES = (
    "launch", "launch.actions", "launch.substitutions", "launch.conditions", "launch.launch_description_sources",
    "launch_ros", "launch_ros.actions", "launch_ros.substitutions", "ament_index_python", "ament_index_python.packages",
)


class SubstitutionFailure(RuntimeError):
    """launch.substitutions.SubstitutionFailure"""


class InvalidConditionExpressionError(ValueError):
    """launch.conditions.InvalidConditionExpressionError"""


# ---- results ------------------------------------------------------------------------------------------
@dataclass
class LaunchedNode:
    package: str | None
    executable: str
    name: str | None
    namespace: str | None
    parameters: list  # dicts of evaluated values, or parameter-file paths
    arguments: list[str]
    prefix: str | None
    output: Any
    emulate_tty: bool

    def command_line(self, folder) -> list[str]:
        """The node's argv after the executable, as launch_ros builds it, writing its parameter files into `folder`."""
        files = []
        for index, item in enumerate(self.parameters):
            if isinstance(item, dict):
                path = pathlib.Path(folder) / f"launch_params_{self.executable}_{index}"
                # yaml.dump, not safe_dump, as launch_ros does: tuples come out as !!python/tuple
                path.write_text(yaml.dump({api.params_file_key(self.name, self.namespace): {"ros__parameters": item}},
                                          default_flow_style=False))
                files.append(str(path))
            else:
                files.append(str(item))
        return [*self.arguments, *api.node_ros_arguments(self.name, self.namespace, files)]


@dataclass
class IncludedLaunch:
    package: str
    path: str
    arguments: dict[str, str]


@dataclass
class LaunchResult:
    nodes: list[LaunchedNode] = field(default_factory=list)
    includes: list[IncludedLaunch] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    configurations: dict[str, str] = field(default_factory=dict)

    def node(self, package: str) -> LaunchedNode:
        found = [n for n in self.nodes if n.package == package]
        assert len(found) == 1, f"expected one node of package {package!r}, got {len(found)}: {self.nodes}"
        return found[0]

    def include(self, package: str) -> IncludedLaunch:
        found = [i for i in self.includes if i.package == package]
        assert len(found) == 1, f"expected one include of package {package!r}, got {len(found)}: {self.includes}"
        return found[0]


# ---- substitutions -----------------------------------------------------------------------------------
class Substitution:
    def perform(self, context) -> str:
        raise NotImplementedError


def _bind(spec, args, kwargs, label):
    return api.check_call(spec, args, kwargs, label).arguments


def to_substitutions(value, what: str) -> list[Substitution]:
    """launch.utilities.normalize_to_list_of_substitutions: a str, a Substitution, or an iterable of those."""
    if isinstance(value, str):
        return [TextSubstitution(text=value)]
    if isinstance(value, Substitution):
        return [value]
    if isinstance(value, collections.abc.Iterable):
        items = list(value)
        if all(isinstance(v, (str, Substitution)) for v in items):
            return [TextSubstitution(text=v) if isinstance(v, str) else v for v in items]
    raise LaunchAPIMismatch(f"{what} must be a str, a Substitution or a list of those (SomeSubstitutionsType), "
                            f"got {type(value).__name__} {value!r}.")


def perform(context, subs: list[Substitution]) -> str:
    return "".join(s.perform(context) for s in subs)


class TextSubstitution(Substitution):
    def __init__(self, *args, **kwargs):
        self.text = _bind(api.TextSubstitution.__init__, args, kwargs, "TextSubstitution")["text"]

    def perform(self, context) -> str:
        return self.text


class LaunchConfiguration(Substitution):
    def __init__(self, *args, **kwargs):
        bound = _bind(api.LaunchConfiguration.__init__, args, kwargs, "LaunchConfiguration")
        self.variable_name = to_substitutions(bound["variable_name"], "LaunchConfiguration variable_name")
        default = bound["default"]
        if default is not None and not isinstance(default, (str, Substitution, list, tuple)):
            default = str(default)
        self.default = None if default is None else to_substitutions(default, "LaunchConfiguration default")

    def perform(self, context) -> str:
        name = perform(context, self.variable_name)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is None:
            raise SubstitutionFailure(f"launch configuration '{name}' does not exist")
        return perform(context, self.default)


class PathJoinSubstitution(Substitution):
    def __init__(self, *args, **kwargs):
        parts = _bind(api.PathJoinSubstitution.__init__, args, kwargs, "PathJoinSubstitution")["substitutions"]
        self.parts = to_substitutions(parts, "PathJoinSubstitution substitutions")

    def perform(self, context) -> str:
        return os.path.join(*(part.perform(context) for part in self.parts))


class FindPackageShare(Substitution):
    def __init__(self, *args, **kwargs):
        self.package = to_substitutions(_bind(api.FindPackageShare.__init__, args, kwargs, "FindPackageShare")["package"],
                                        "FindPackageShare package")

    def perform(self, context) -> str:
        return _registry().share(perform(context, self.package))


# ---- conditions ------------------------------------------------------------------------------------------
class _Condition:
    negate = False

    def __init__(self, *args, **kwargs):
        spec = api.UnlessCondition if self.negate else api.IfCondition
        expression = _bind(spec.__init__, args, kwargs, type(self).__name__)["predicate_expression"]
        self.expression = to_substitutions(expression, f"{type(self).__name__} predicate_expression")

    def evaluate(self, context) -> bool:
        text = perform(context, self.expression).strip().lower()
        if text not in ("true", "1", "false", "0"):
            raise InvalidConditionExpressionError(
                f"Unexpected condition expression {text!r}: expected true, false, 1 or 0 (any case).")
        return (text in ("true", "1")) != self.negate


class IfCondition(_Condition):
    pass


class UnlessCondition(_Condition):
    negate = True


def _check_condition(condition, owner: str):
    if condition is not None and not isinstance(condition, _Condition):
        raise LaunchAPIMismatch(f"{owner} condition must be a launch Condition, got {type(condition).__name__}.")
    return condition


# ---- sources, context, description -----------------------------------------------------------------------
class PythonLaunchDescriptionSource:
    def __init__(self, *args, **kwargs):
        path = _bind(api.PythonLaunchDescriptionSource.__init__, args, kwargs, "PythonLaunchDescriptionSource")
        self.location = to_substitutions(path["launch_file_path"], "PythonLaunchDescriptionSource launch_file_path")


class LaunchContext:
    def __init__(self, configurations: dict[str, str]):
        self.launch_configurations = configurations

    def perform_substitution(self, substitution) -> str:
        return perform(self, to_substitutions(substitution, "perform_substitution argument"))


class LaunchDescription:
    def __init__(self, *args, **kwargs):
        entities = _bind(api.LaunchDescription.__init__, args, kwargs, "LaunchDescription")["initial_entities"]
        self.entities = [] if entities is None else list(entities)

    def add_action(self, *args, **kwargs):
        self.entities.append(_bind(api.LaunchDescription.add_action, args, kwargs, "LaunchDescription.add_action")["action"])

    def add_entity(self, *args, **kwargs):
        self.entities.append(_bind(api.LaunchDescription.add_entity, args, kwargs, "LaunchDescription.add_entity")["entity"])

    def sub_entities(self) -> list:
        return self.entities


# ---- actions -------------------------------------------------------------------------------------------------
class DeclareLaunchArgument:
    def __init__(self, *args, **kwargs):
        bound = _bind(api.DeclareLaunchArgument.__init__, args, kwargs, "DeclareLaunchArgument")
        self.name = bound["name"]
        if not isinstance(self.name, str):
            raise LaunchAPIMismatch(f"DeclareLaunchArgument name must be a str, got {self.name!r}.")
        default, choices = bound["default_value"], bound["choices"]
        if choices is not None:
            if len(choices) == 0:
                raise RuntimeError("Provided choices arg is empty. Use None to ignore the choice list.")
            if isinstance(default, str) and default not in choices:
                raise RuntimeError(f'Provided default_value "{default}" is not in provided choices "{choices}".')
        self.default = None if default is None else to_substitutions(default, f"default_value of '{self.name}'")
        self.choices = choices
        self.description = api.declared_description(bound["description"], choices)
        self.condition = _check_condition(bound["condition"], "DeclareLaunchArgument")
        self.conditionally_included = False  # set while an include lists the arguments it needs

    def sub_entities(self) -> list:
        return []


class IncludeLaunchDescription:
    def __init__(self, *args, **kwargs):
        bound = _bind(api.IncludeLaunchDescription.__init__, args, kwargs, "IncludeLaunchDescription")
        source = bound["launch_description_source"]
        if not isinstance(source, PythonLaunchDescriptionSource):
            source = PythonLaunchDescriptionSource(source)  # the real one wraps it in AnyLaunchDescriptionSource
        self.source = source
        pairs = [] if bound["launch_arguments"] is None else list(bound["launch_arguments"])
        self.arguments = []
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise LaunchAPIMismatch(f"IncludeLaunchDescription launch_arguments must be (name, value) pairs "
                                        f"(e.g. dict.items()), got {pair!r}.")
            name, value = pair
            self.arguments.append((to_substitutions(name, "launch argument name"),
                                   to_substitutions(value, f"value of launch argument {name!r}")))
        self.condition = _check_condition(bound["condition"], "IncludeLaunchDescription")

    def sub_entities(self) -> list:
        """The included description loaded without a context, or nothing if its path needs one."""
        try:
            return [_load_description(perform(LaunchContext({}), self.source.location))]
        except Exception:  # noqa: BLE001 - upstream logs the failure at debug level and goes on
            return []

    def argument_names_without_context(self) -> list[str] | None:
        try:
            return [perform(LaunchContext({}), name) for name, _ in self.arguments]
        except Exception:  # noqa: BLE001 - upstream returns None, and then list.extend(None) raises TypeError
            return None


class OpaqueFunction:
    def __init__(self, *args, **kwargs):
        bound = _bind(api.OpaqueFunction.__init__, args, kwargs, "OpaqueFunction")
        if not callable(bound["function"]):
            raise TypeError(f"OpaqueFunction expected a callable for 'function', got '{type(bound['function'])}'")
        self.function = bound["function"]
        self.args = list(bound["args"] or [])
        self.kwargs = dict(bound["kwargs"] or {})
        self.condition = _check_condition(bound["condition"], "OpaqueFunction")

    def sub_entities(self) -> list:
        return []  # what an OpaqueFunction returns is only known when it runs


class LogInfo:
    def __init__(self, *args, **kwargs):
        bound = _bind(api.LogInfo.__init__, args, kwargs, "LogInfo")
        self.msg = to_substitutions(bound["msg"], "LogInfo msg")
        self.condition = _check_condition(bound["condition"], "LogInfo")

    def sub_entities(self) -> list:
        return []


def _normalize_parameter_value(name: str, value):
    """launch_ros.utilities.normalize_parameter_dict for one value (nested dicts are flattened by the caller)."""
    if isinstance(value, (str, bool, int, float, bytes)):
        return value
    if isinstance(value, Substitution):
        return [value]
    if isinstance(value, collections.abc.Sequence):
        items = list(value)
        for item in items:
            if not isinstance(item, (str, bool, int, float, Substitution, list, tuple)):
                raise LaunchAPIMismatch(f"Parameter {name!r}: list items must be str, bool, int, float or "
                                        f"substitutions, got {type(item).__name__}.")
        return tuple(items)
    raise LaunchAPIMismatch(f"Unexpected type for parameter value {value!r} of {name!r} "
                            f"(str, int, float, bool, substitutions, lists of those, or a nested dict).")


def _flatten_parameters(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise LaunchAPIMismatch(f"Parameter names must be str here, got {key!r}.")
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, collections.abc.Mapping):
            out.update(_flatten_parameters(value, name))
        else:
            out[name] = _normalize_parameter_value(name, value)
    return out


def _uniform(name: str, values: list):
    """launch_ros evaluate_parameter_dict: a non-empty list whose items share one of bool, int, float, str."""
    if not values or type(values[0]) not in (bool, int, float, str) or any(type(v) is not type(values[0]) for v in values):
        raise TypeError("Expected a non-empty sequence, with items of uniform type. Allowed sequence item types are "
                        f"bool, int, float, str. Got inconsistent input for \"{name}\"")
    return tuple(values)


def _evaluate_parameter(context, name: str, value):
    if isinstance(value, list):  # substitutions forming one value, read as YAML
        text = perform(context, value) or "''"
        loaded = yaml.safe_load(text)
        if isinstance(loaded, (bool, int, float, str, bytes)):
            return loaded
        if isinstance(loaded, list):
            return _uniform(name, loaded)
        raise TypeError(f"Allowed value types are bytes, bool, int, float, str and lists of those. Got {type(loaded)} "
                        f"for \"{name}\".")
    if isinstance(value, tuple):
        if any(isinstance(v, (Substitution, list, tuple)) for v in value):
            items = [perform(context, to_substitutions(v, name)) if not isinstance(v, (bool, int, float)) else v
                     for v in value]
            return _uniform(name, [yaml.safe_load(v) if isinstance(v, str) else v for v in items])
        if {type(v) for v in value} <= {int, float} and any(isinstance(v, float) for v in value):
            value = tuple(float(v) for v in value)
        return _uniform(name, list(value))
    return value


class Node:
    def __init__(self, *args, **kwargs):
        bound = _bind(api.Node.__init__, args, kwargs, "Node")
        self.bound = bound
        parameters = bound["parameters"]
        self.parameters = []
        if parameters is not None:
            if isinstance(parameters, str) or not isinstance(parameters, list):
                raise LaunchAPIMismatch(f"Node parameters must be a list of dicts or parameter-file paths, got "
                                        f"{parameters!r}.")
            for item in parameters:
                if isinstance(item, collections.abc.Mapping):
                    self.parameters.append(_flatten_parameters(item))
                else:
                    item = str(item) if isinstance(item, pathlib.Path) else item
                    self.parameters.append(to_substitutions(item, "Node parameter file"))
        self.arguments = [to_substitutions(a, "Node argument") for a in (bound["arguments"] or [])]
        for key in ("executable", "package", "name", "namespace", "prefix"):
            if bound[key] is not None:
                to_substitutions(bound[key], f"Node {key}")
        if not isinstance(bound["emulate_tty"], bool):
            raise LaunchAPIMismatch(f"Node emulate_tty must be a bool, got {bound['emulate_tty']!r}.")
        self.condition = _check_condition(bound["condition"], "Node")

    def sub_entities(self) -> list:
        return []


# ---- ament index -----------------------------------------------------------------------------------------------
class PackageNotFoundError(KeyError):
    pass


class _Registry:
    """Where packages live: real install prefixes (ament index markers) first, then the modelled upstream ones."""

    def __init__(self, prefixes: list[pathlib.Path]):
        self.prefixes = [pathlib.Path(p) for p in prefixes]
        self.external = {f.package for f in api.EXTERNAL_LAUNCH_FILES} | set(api.EXTERNAL_EXECUTABLES)

    def prefix(self, name: str) -> pathlib.Path | None:
        for prefix in self.prefixes:
            if (prefix / "share" / "ament_index" / "resource_index" / "packages" / name).is_file():
                return prefix
        return None

    def share(self, name: str) -> str:
        if re.fullmatch("[a-zA-Z0-9][a-zA-Z0-9_-]+", name, re.ASCII) is None:
            raise ValueError(f"'{name}' is not a valid package name")
        prefix = self.prefix(name)
        if prefix is not None:
            return str(prefix / "share" / name)
        if name in self.external:
            return f"{EXTERNAL_SHARE_ROOT}/{name}"
        raise PackageNotFoundError(f"package '{name}' not found, searching: {[str(p) for p in self.prefixes]}")

    def executables(self, name: str) -> set[str]:
        prefix = self.prefix(name)
        if prefix is not None:
            lib = prefix / "lib" / name
            return {p.name for p in lib.iterdir() if p.is_file()} if lib.is_dir() else set()
        self.share(name)  # raises for unknown packages
        return set(api.EXTERNAL_EXECUTABLES.get(name, ()))


_active: list[_Registry] = []


def _registry() -> _Registry:
    if not _active:
        raise RuntimeError("The fake launch API is used outside `launch_fake.install()`.")
    return _active[-1]


def get_package_share_directory(*args, **kwargs) -> str:
    name = _bind(api.get_package_share_directory, args, kwargs, "get_package_share_directory")["package_name"]
    return _registry().share(name)


def get_package_prefix(*args, **kwargs) -> str:
    name = _bind(api.get_package_prefix, args, kwargs, "get_package_prefix")["package_name"]
    return str(pathlib.Path(_registry().share(name)).parent.parent)


# ---- loading launch files ----------------------------------------------------------------------------------------
_module_counter = itertools.count()


def load_module(path) -> types.ModuleType:
    """Import a launch file by path under a unique module name, as ros2 launch does."""
    path = pathlib.Path(path)
    spec = importlib.util.spec_from_file_location(f"_fake_launch_{next(_module_counter)}_{path.stem.replace('.', '_')}",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "generate_launch_description", None)):
        raise LaunchAPIMismatch(f"{path} has no generate_launch_description() function.")
    return module


def _external_generations(path: str) -> list[api.ExternalLaunchFile]:
    if path.startswith(EXTERNAL_SHARE_ROOT + os.sep):
        package, _, relative = path[len(EXTERNAL_SHARE_ROOT) + 1:].partition(os.sep)
        return [f for f in api.EXTERNAL_LAUNCH_FILES if (f.package, f.path) == (package, relative)]
    return []


def _modelled_description(generations: list[api.ExternalLaunchFile]) -> LaunchDescription:
    """What an upstream launch file declares, as the include check sees it (required if any generation requires it)."""
    declared: dict[str, DeclareLaunchArgument] = {}
    for generation in generations:
        for name, default in generation.arguments.items():
            if name in declared and declared[name].default is None:
                continue
            choices = generation.choices.get(name)
            declared[name] = DeclareLaunchArgument(name, default_value=default, description=generation.descriptions.get(name),
                                                   choices=None if choices is None else list(choices))
    return LaunchDescription(list(declared.values()))


def _load_description(path: str) -> LaunchDescription:
    """The description of the launch file at `path`: ours is run, an upstream one is modelled (launch_api)."""
    if os.path.isfile(path):
        description = load_module(path).generate_launch_description()
        if not isinstance(description, LaunchDescription):
            raise LaunchAPIMismatch(f"generate_launch_description() of {path} must return a LaunchDescription, got "
                                    f"{type(description).__name__}.")
        return description
    generations = _external_generations(path)
    if not generations:
        raise FileNotFoundError(f"Included launch file not found: {path}")
    return _modelled_description(generations)


# ---- launch's required-argument check of an include (launch_api, "what the real launch enforces") ---------------
def declared_arguments(description: LaunchDescription) -> list[tuple[DeclareLaunchArgument, list | None]]:
    """LaunchDescription.get_launch_arguments_with_include_launch_description_actions() (launch_description.py)."""
    found: list[tuple[DeclareLaunchArgument, list | None]] = []

    def walk(entities, conditional: bool, includes: list | None):
        for entity in entities:
            if isinstance(entity, DeclareLaunchArgument) and all(entity.name != seen.name for seen, _ in found):
                entity.conditionally_included = conditional or entity.condition is not None
                found.append((entity, includes))
            nested = includes
            if isinstance(entity, IncludeLaunchDescription):
                if nested is None:
                    nested = []
                nested.append(entity)  # shared with the siblings that follow, as upstream
            if getattr(entity, "condition", None) is None:
                walk(entity.sub_entities(), False, nested)
            else:
                walk(entity.sub_entities(), True, nested)

    walk(description.entities, False, None)
    return found


def check_include(description: LaunchDescription, given: list[str]) -> None:
    """IncludeLaunchDescription.execute()'s check (include_launch_description.py), with its message."""
    names = list(given)
    for argument, includes in declared_arguments(description):
        if argument.conditionally_included or argument.default is not None:
            continue
        for include in includes or ():
            names.extend(include.argument_names_without_context())  # in place: upstream aliases the list
        if argument.name not in names:
            raise RuntimeError(api.INCLUDE_MISSING_ARGUMENT.format(argument.name, argument.description, ", ".join(names)))


# ---- running a description -------------------------------------------------------------------------------------
class FakeLaunch:
    def __init__(self, registry: _Registry):
        self.registry = registry

    @staticmethod
    def load(path) -> types.ModuleType:
        return load_module(path)

    def run(self, description, arguments: dict[str, str] | None = None) -> LaunchResult:
        """Visit a description with `ros2 launch` command-line arguments (name -> string value).

        ros2launch includes the file it is given with the command-line arguments as the include's arguments
        (ros2launch/api/api.py), so the top-level description gets the include check with those names."""
        if not isinstance(description, LaunchDescription):
            raise LaunchAPIMismatch(f"generate_launch_description() must return a LaunchDescription, got "
                                    f"{type(description).__name__}.")
        check_include(description, list(arguments or {}))
        result = LaunchResult()
        context = LaunchContext(dict(arguments or {}))
        self._visit(description, context, result)
        result.configurations = dict(context.launch_configurations)
        return result

    def _visit(self, entity, context: LaunchContext, result: LaunchResult):
        if isinstance(entity, LaunchDescription):
            for child in entity.entities:
                self._visit(child, context, result)
            return
        condition = getattr(entity, "condition", None)
        if condition is not None and not condition.evaluate(context):
            return
        if isinstance(entity, DeclareLaunchArgument):
            self._declare(entity, context)
        elif isinstance(entity, IncludeLaunchDescription):
            self._include(entity, context, result)
        elif isinstance(entity, OpaqueFunction):
            returned = entity.function(context, *entity.args, **entity.kwargs)
            if returned is not None:
                if not isinstance(returned, (list, tuple)):
                    raise LaunchAPIMismatch(f"An OpaqueFunction must return a list of entities or None, got {returned!r}.")
                for child in returned:
                    self._visit(child, context, result)
        elif isinstance(entity, LogInfo):
            result.logs.append(perform(context, entity.msg))
        elif isinstance(entity, Node):
            result.nodes.append(self._node(entity, context))
        else:
            raise LaunchAPIMismatch(f"{entity!r} is not a launch entity the fake knows (see launch_api.py).")

    @staticmethod
    def _declare(argument: DeclareLaunchArgument, context: LaunchContext):
        configs = context.launch_configurations
        if argument.name not in configs:
            if argument.default is None:
                raise RuntimeError(f'Required launch argument "{argument.name}" was not provided.')
            configs[argument.name] = perform(context, argument.default)
        if argument.choices is not None and configs[argument.name] not in argument.choices:
            raise RuntimeError(f'Argument "{argument.name}" provided value "{configs[argument.name]}" is not valid. '
                               f"Valid options are: {argument.choices}")

    def _include(self, include: IncludeLaunchDescription, context: LaunchContext, result: LaunchResult):
        path = perform(context, include.source.location)
        description = _load_description(path)
        names = [perform(context, name) for name, _ in include.arguments]
        generations = _external_generations(path)
        for generation in generations or [None]:  # each upstream generation is a file of its own
            check_include(_modelled_description([generation]) if generation else description, names)
        arguments = {name: perform(context, value) for name, (_, value) in zip(names, include.arguments)}
        package, relative = self._owner(path)
        result.includes.append(IncludedLaunch(package=package, path=relative, arguments=arguments))
        if generations:
            _check_external_include(generations, arguments)
            context.launch_configurations.update(arguments)
            return
        context.launch_configurations.update(arguments)
        self._visit(description, context, result)

    def _owner(self, path: str) -> tuple[str, str]:
        for root in [EXTERNAL_SHARE_ROOT] + [str(p / "share") for p in self.registry.prefixes]:
            if path.startswith(root + os.sep):
                package, _, relative = path[len(root) + 1:].partition(os.sep)
                return package, relative
        return "", path

    def _node(self, node: Node, context: LaunchContext) -> LaunchedNode:
        bound = node.bound

        def text(key):
            return None if bound[key] is None else perform(context, to_substitutions(bound[key], key))

        package, executable = text("package"), text("executable")
        if package is not None and executable not in self.registry.executables(package):
            raise RuntimeError(f"executable '{executable}' not found on the libexec directory of package '{package}' "
                               f"(has: {sorted(self.registry.executables(package))})")
        parameters = []
        for item in node.parameters:
            if isinstance(item, dict):
                parameters.append({name: _evaluate_parameter(context, name, value) for name, value in item.items()})
            else:
                parameters.append(perform(context, item))
        output = bound["output"]
        if not isinstance(output, dict):
            output = perform(context, to_substitutions(output, "Node output"))
        return LaunchedNode(package=package, executable=executable, name=text("name"), namespace=text("namespace"),
                            parameters=parameters, arguments=[perform(context, a) for a in node.arguments],
                            prefix=text("prefix"), output=output, emulate_tty=bound["emulate_tty"])


def _check_external_include(generations: list[api.ExternalLaunchFile], arguments: dict[str, str]):
    declared = set().union(*(g.arguments for g in generations))
    unknown = sorted(set(arguments) - declared)
    if unknown:
        raise LaunchAPIMismatch(f"{generations[0].package}/{generations[0].path} declares no argument {unknown}; "
                                f"it declares: {sorted(declared)} ({generations[0].source}).")
    for generation in generations:  # required arguments: check_include, with launch's own message
        for name, allowed in generation.choices.items():
            if name in arguments and arguments[name] not in allowed:
                raise LaunchAPIMismatch(f"{generation.package}/{generation.path}: {name}:={arguments[name]!r} is not "
                                        f"one of {allowed}.")


# ---- what colcon installs ---------------------------------------------------------------------------------------
def read_setup(repo) -> dict:
    """The keyword arguments `repo/setup.py` passes to setuptools.setup(), without building anything."""
    import runpy

    import setuptools

    captured: dict = {}
    original, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        os.chdir(repo)  # setup.py globs relative paths, as colcon runs it from the package folder
        runpy.run_path("setup.py", run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return captured


def install_like_colcon(repo, prefix) -> pathlib.Path:
    """Lay out what `colcon build` installs from setup.py and setup.cfg: data files, and one file per console script
    in the `[install] install_scripts` folder ($base = the install prefix). Returns the prefix."""
    import configparser
    import shutil

    repo, prefix = pathlib.Path(repo), pathlib.Path(prefix)
    kwargs = read_setup(repo)
    for destination, files in kwargs.get("data_files", []):
        (prefix / destination).mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copy(repo / name, prefix / destination / pathlib.Path(name).name)
    cfg = configparser.ConfigParser()
    cfg.read(repo / "setup.cfg")
    scripts = pathlib.Path(cfg.get("install", "install_scripts", fallback="$base/bin").replace("$base", str(prefix)))
    scripts.mkdir(parents=True, exist_ok=True)
    for entry in kwargs.get("entry_points", {}).get("console_scripts", []):
        (scripts / entry.split("=")[0].strip()).write_text(f"# console script {entry}\n")
    return prefix


# ---- installing the modules ----------------------------------------------------------------------------------
def _modules() -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    mods = {
        "launch.actions": module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                                 IncludeLaunchDescription=IncludeLaunchDescription, OpaqueFunction=OpaqueFunction,
                                 LogInfo=LogInfo),
        "launch.substitutions": module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                                       PathJoinSubstitution=PathJoinSubstitution, TextSubstitution=TextSubstitution,
                                       SubstitutionFailure=SubstitutionFailure),
        "launch.conditions": module("launch.conditions", IfCondition=IfCondition, UnlessCondition=UnlessCondition,
                                    InvalidConditionExpressionError=InvalidConditionExpressionError),
        "launch.launch_description_sources": module("launch.launch_description_sources",
                                                    PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        "launch_ros.actions": module("launch_ros.actions", Node=Node),
        "launch_ros.substitutions": module("launch_ros.substitutions", FindPackageShare=FindPackageShare),
        "ament_index_python.packages": module("ament_index_python.packages",
                                              get_package_share_directory=get_package_share_directory,
                                              get_package_prefix=get_package_prefix,
                                              PackageNotFoundError=PackageNotFoundError),
    }
    mods["launch"] = module("launch", LaunchDescription=LaunchDescription, LaunchContext=LaunchContext,
                            actions=mods["launch.actions"], substitutions=mods["launch.substitutions"],
                            conditions=mods["launch.conditions"],
                            launch_description_sources=mods["launch.launch_description_sources"])
    mods["launch_ros"] = module("launch_ros", actions=mods["launch_ros.actions"],
                                substitutions=mods["launch_ros.substitutions"])
    mods["ament_index_python"] = module("ament_index_python", packages=mods["ament_index_python.packages"],
                                        get_package_share_directory=get_package_share_directory)
    for mod in mods.values():
        mod.__path__ = []  # a package, so `import launch.actions` resolves through sys.modules
    return mods


@contextlib.contextmanager
def install(prefixes=()):
    """Register the fake modules under the real names; `prefixes` are install prefixes holding our package."""
    registry = _Registry(list(prefixes))
    with swapped(_modules()):
        _active.append(registry)
        try:
            yield FakeLaunch(registry)
        finally:
            _active.remove(registry)
