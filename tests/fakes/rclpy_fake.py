"""A fake of rclpy and of the message/action packages we use, with the real names, signatures and quirks.

    with install() as ros:                     # registers rclpy, sensor_msgs, franka_msgs, ... in sys.modules
        import rclpy
        from rclpy.node import Node
        ...
        arm = FakeFranka(ros).start()          # franka_ros2 as seen from a client (other "processes")
        cam = FakeImageTopic(ros, "/cam/image_raw", source=lambda: frame).start()
        ros.calls                              # every public rclpy call: Call(name, args, kwargs)

What it keeps from the real thing (facts and sources in `ros_api.py`):

* every public call is validated against the stubs in `ros_api` (an unknown function, method or
  argument raises `RosAPIMismatch`) and recorded in `ros.calls`;
* messages are built from the real field lists with rosidl's behaviour: `__slots__`, keyword-only
  constructors asserting 'Invalid arguments passed to constructor', typed setters (a float64 field
  takes a float, never an int or a numpy array); `publish` of another type raises TypeError;
* subscription callbacks, action-goal responses and results run only while an executor spins the
  node; a reliable subscriber never hears a best-effort publisher (the franka_ros2 convenience
  topics are best-effort, so a default-QoS subscriber gets nothing, silently);
* `init` installs signal handlers unless told not to (recorded, not installed), `shutdown` twice
  raises, publishing after shutdown raises, parameters from `--ros-args -p name:=value` are typed;
* the ROS arguments name nodes and give them parameters as rcl does (`ros_api`, "what rcl enforces"):
  a `-r __node:=X` given to `init` renames every node of the process, `NODE:__node:=X` only that one;
  `--params-file` files (what launch_ros writes) apply to the nodes whose pattern fits.
"""

from __future__ import annotations

import array
import collections
import contextlib
import enum
import functools
import itertools
import logging
import math
import re
import sys
import threading
import time
import types
from collections import UserList, UserString
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from fakes import ros_api as api
from fakes.api_check import Checked
from fakes.modules import swapped

log = logging.getLogger("dsrl_real.fake_rclpy")

# ---- messages (rosidl_generator_py behaviour) -------------------------------------------------
_INT_RANGES = {"int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "int16": (-2**15, 2**15 - 1),
               "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
               "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}
_ARRAY_CODES = {"double": "d", "float": "f", "uint8": "B", "int8": "b", "int32": "i", "uint32": "I"}


class _Message:
    """Base of the generated message classes (fields live in slots named '_<field>')."""

    __slots__ = ()
    _TYPE = ""
    _FIELDS: dict[str, str] = {}

    def __init__(self, **kwargs):
        assert all("_" + key in self.__slots__ for key in kwargs), (
            "Invalid arguments passed to constructor: %s" % ", ".join(sorted(k for k in kwargs if "_" + k not in self.__slots__)))
        defaults = api.MESSAGE_DEFAULTS.get(self._TYPE, {})
        for name, ros_type in self._FIELDS.items():
            setattr(self, name, kwargs[name] if name in kwargs else defaults.get(name, _default(ros_type)))

    def __eq__(self, other):
        return type(self) is type(other) and all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __repr__(self):
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"{self._TYPE.replace('/', '.')}({fields})"


def _default(ros_type: str):
    if ros_type.startswith("sequence<"):
        inner = ros_type[9:-1]
        return array.array(_ARRAY_CODES[inner]) if inner in _ARRAY_CODES else []
    if ros_type in ("double", "float"):
        return 0.0
    if ros_type in _INT_RANGES:
        return 0
    if ros_type == "boolean":
        return False
    if ros_type == "string":
        return ""
    return message_class(ros_type)()


def _check_value(field_name: str, ros_type: str, value):
    """The value to store, or AssertionError with rosidl's message."""
    if ros_type.startswith("sequence<"):
        inner = ros_type[9:-1]
        code = _ARRAY_CODES.get(inner)
        if code and isinstance(value, array.array):
            assert value.typecode == code, f"The '{field_name}' array.array() must have the type code of '{code}'"
            return value
        if inner == "uint8" and isinstance(value, (bytes, bytearray)):
            return array.array("B", value)  # every byte is an int in [0, 255]
        is_seq = (isinstance(value, (Sequence, Set, UserList)) and not isinstance(value, (str, UserString)))
        if inner in ("double", "float"):
            assert is_seq and all(isinstance(v, float) for v in value), (
                f"The '{field_name}' field must be a set or sequence and each value of type 'float'")
        elif inner in _INT_RANGES:
            lo, hi = _INT_RANGES[inner]
            assert is_seq and all(isinstance(v, int) and lo <= v <= hi for v in value), (
                f"The '{field_name}' field must be a set or sequence and each value of type 'int' in [{lo}, {hi}]")
        elif inner == "string":
            assert is_seq and all(isinstance(v, str) for v in value), (
                f"The '{field_name}' field must be a set or sequence and each value of type 'str'")
        else:
            cls = message_class(inner)
            assert is_seq and all(isinstance(v, cls) for v in value), (
                f"The '{field_name}' field must be a set or sequence and each value of type '{cls.__name__}'")
        return array.array(code, value) if code else list(value)
    if ros_type in ("double", "float"):
        assert isinstance(value, float), f"The '{field_name}' field must be of type 'float'"
        return value
    if ros_type in _INT_RANGES:
        assert isinstance(value, int), f"The '{field_name}' field must be of type 'int'"
        lo, hi = _INT_RANGES[ros_type]
        assert lo <= value <= hi, f"The '{field_name}' field must be an {'unsigned ' if lo == 0 else ''}integer in [{lo}, {hi}]"
        return value
    if ros_type == "boolean":
        assert isinstance(value, bool), f"The '{field_name}' field must be of type 'bool'"
        return value
    if ros_type == "string":
        assert isinstance(value, str), f"The '{field_name}' field must be of type 'str'"
        return value
    cls = message_class(ros_type)
    assert isinstance(value, cls), f"The '{field_name}' field must be a sub message of type '{cls.__name__}'"
    return value


def _field_property(name: str, ros_type: str) -> property:
    slot = "_" + name

    def get(self):
        return getattr(self, slot)

    def set_(self, value):
        object.__setattr__(self, slot, _check_value(name, ros_type, value))

    return property(get, set_)


_CLASSES: dict[str, type] = {}


def _build_class(type_name: str, fields: dict[str, str], class_name: str, module: str) -> type:
    namespace = {"__slots__": tuple("_" + f for f in fields), "_TYPE": type_name, "_FIELDS": dict(fields),
                 "__module__": module}
    namespace.update({f: _field_property(f, t) for f, t in fields.items()})
    namespace.update(api.MESSAGE_CONSTANTS.get(type_name, {}))
    return type(class_name, (_Message,), namespace)


def message_class(type_name: str) -> type:
    """The fake class for 'sensor_msgs/msg/Image' etc., one per type name."""
    if type_name not in _CLASSES:
        if type_name not in api.MESSAGES:
            raise KeyError(f"The fake has no message type '{type_name}'.")
        package, kind, name = type_name.split("/")
        _CLASSES[type_name] = _build_class(type_name, api.MESSAGES[type_name], name, f"{package}.{kind}")
    return _CLASSES[type_name]


def action_class(type_name: str) -> type:
    if type_name not in _CLASSES:
        package, _, name = type_name.split("/")
        goal, result, feedback = api.ACTIONS[type_name]
        module = f"{package}.action"
        parts = {part: _build_class(f"{type_name}_{part}", fields, f"{name}_{part}", module)
                 for part, fields in (("Goal", goal), ("Result", result), ("Feedback", feedback))}
        _CLASSES[type_name] = type(name, (), {**parts, "__module__": module, "_TYPE": type_name})
    return _CLASSES[type_name]


@dataclass
class GetResultResponse:
    """What ClientGoalHandle.get_result_async() completes with (fields of <Action>_GetResult_Response)."""

    status: int
    result: Any


# ---- rclpy enums, QoS, parameters, exceptions ------------------------------------------------
class SignalHandlerOptions(enum.Enum):
    NO = 0
    SIGINT = 1
    SIGTERM = 2
    ALL = 3


ReliabilityPolicy, HistoryPolicy, DurabilityPolicy = api.ReliabilityPolicy, api.HistoryPolicy, api.DurabilityPolicy


class QoSProfile:
    __slots__ = tuple("_" + k for k in api.QOS_PROFILE_KEYS)

    def __init__(self, **kwargs):
        assert all("_" + key in self.__slots__ for key in kwargs), \
            "Invalid arguments passed to constructor: %r" % kwargs.keys()
        if "history" not in kwargs and "depth" not in kwargs:
            raise TypeError("QoSProfile requires either 'history' or 'depth' to be set")
        self._history = kwargs.get("history", HistoryPolicy.KEEP_LAST)
        self._depth = kwargs.get("depth", 0)
        self._reliability = kwargs.get("reliability", ReliabilityPolicy.RELIABLE)
        self._durability = kwargs.get("durability", DurabilityPolicy.VOLATILE)
        for key in ("lifespan", "deadline", "liveliness", "liveliness_lease_duration", "avoid_ros_namespace_conventions"):
            setattr(self, "_" + key, kwargs.get(key))

    depth = property(lambda self: self._depth)
    reliability = property(lambda self: self._reliability)
    history = property(lambda self: self._history)
    durability = property(lambda self: self._durability)


# rclpy/qos.py presets
qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(history=HistoryPolicy.SYSTEM_DEFAULT, depth=0,
                                        reliability=ReliabilityPolicy.SYSTEM_DEFAULT)


class RCLError(RuntimeError):
    """rclpy._rclpy_pybind11.RCLError"""


class InvalidHandle(RuntimeError):
    """rclpy InvalidHandle: 'Tried to use a handle that has been destroyed.'"""


class NotInitializedException(Exception):
    def __init__(self, msg="rclpy.init() has not been called"):
        super().__init__(msg)


class ParameterNotDeclaredException(Exception):
    def __init__(self, parameters):
        super().__init__(f"Invalid access to undeclared parameter(s): {parameters}")


class ParameterAlreadyDeclaredException(Exception):
    def __init__(self, parameters):
        super().__init__(f"Parameter(s) already declared: {parameters}")


class ParameterUninitializedException(Exception):
    def __init__(self, parameter_name):
        super().__init__(f"The parameter '{parameter_name}' is not initialized")


class InvalidParameterTypeException(Exception):
    def __init__(self, desired_parameter, expected_type):
        super().__init__(
            f"Trying to set parameter '{desired_parameter._name}' to '{desired_parameter._value}' of type "
            f"'{desired_parameter._type_.name}', expecting type '{expected_type}'")


class InvalidTopicNameException(Exception):
    pass


class ExternalShutdownException(Exception):
    """rclpy.executors.ExternalShutdownException: the context was shut down while spinning."""


def _parameter_type(value) -> api.Parameter.Type:
    """rclpy Parameter.Type.from_parameter_value, including its quirk: an empty list is a BYTE_ARRAY."""
    T = api.Parameter.Type
    if value is None:
        return T.NOT_SET
    if isinstance(value, bool):
        return T.BOOL
    if isinstance(value, int):
        return T.INTEGER
    if isinstance(value, float):
        return T.DOUBLE
    if isinstance(value, str):
        return T.STRING
    if isinstance(value, (list, tuple)):
        for kind, check in ((T.BYTE_ARRAY, bytes), (T.BOOL_ARRAY, bool), (T.INTEGER_ARRAY, int),
                            (T.DOUBLE_ARRAY, float), (T.STRING_ARRAY, str)):
            if all(isinstance(v, check) for v in value):
                return kind
    raise TypeError(f"The given value is not one of the allowed types '{type(value)}'.")


# ---- recording + validation -------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    name: str  # e.g. 'init', 'Node.create_subscription', 'Publisher.publish', 'ActionClient.send_goal_async'
    args: tuple
    kwargs: dict


def _record(instance, name: str, args: tuple, kwargs: dict) -> None:
    if instance._ros is not None:
        instance._ros._record(name, args, kwargs)


_api = api.REAL.method(_record)  # validate a public method call against the real signature, record it, then run it


class _Checked(Checked):
    _API = api.REAL
    _ros: "FakeRos"


_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOPIC = re.compile(rf"^(~|~/{_TOKEN}(/{_TOKEN})*|/?{_TOKEN}(/{_TOKEN})*)$")


def _reliable(qos) -> bool:
    return qos.reliability != ReliabilityPolicy.BEST_EFFORT


def _depth(qos) -> int:
    return max(1, qos.depth) if qos.history != HistoryPolicy.KEEP_ALL else 1000


# ---- graph ------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Endpoint:
    topic: str
    msg_type: type
    qos: QoSProfile
    node: Any = None  # a fake Node, or None for a peer (another process)
    callback: Optional[Callable] = None
    queue: Optional[collections.deque] = None


class FakeRos:
    """One ROS graph and default context: what an `install()` block holds."""

    def __init__(self):
        self.calls: list[Call] = []
        self.logs: list[tuple[str, str, str]] = []  # (logger name, level, message)
        self.initialized = False
        self.shut_down = False
        self.signal_handlers: SignalHandlerOptions | None = None
        self.global_arguments = api.RosArguments()  # from init(args=...): remaps and parameters for every node
        self.nodes: list = []
        self._cv = threading.Condition(threading.RLock())
        self._subs: list[_Endpoint] = []
        self._pubs: list[_Endpoint] = []
        self._servers: dict[str, tuple[type, Callable]] = {}
        self._tasks: dict[int, collections.deque] = collections.defaultdict(collections.deque)  # id(node) -> callables
        self.peers: list = []

    # -- call log --
    def _record(self, name: str, args, kwargs) -> None:
        with self._cv:
            self.calls.append(Call(name, tuple(args), dict(kwargs)))

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def calls_named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    # -- context --
    @property
    def ok(self) -> bool:
        return self.initialized and not self.shut_down

    def _shutdown_context(self) -> None:
        with self._cv:
            self.shut_down = True
            self._cv.notify_all()

    # -- topics --
    def resolve(self, name: str, node_name: str = "", namespace: str = "/") -> str:
        if not _TOPIC.match(name):
            raise InvalidTopicNameException(f"topic name '{name}' is invalid")
        if name.startswith("~"):
            base = namespace.rstrip("/") + "/" + node_name
            return base + name[1:]
        return name if name.startswith("/") else namespace.rstrip("/") + "/" + name

    def _add_subscription(self, endpoint: _Endpoint) -> None:
        with self._cv:
            self._subs.append(endpoint)
            self._cv.notify_all()

    def _add_publisher(self, endpoint: _Endpoint) -> None:
        with self._cv:
            self._pubs.append(endpoint)

    def _remove(self, endpoint: _Endpoint) -> None:
        with self._cv:
            for group in (self._subs, self._pubs):
                if endpoint in group:
                    group.remove(endpoint)

    def count_subscribers(self, topic: str) -> int:
        with self._cv:
            return sum(s.topic == topic for s in self._subs)

    def count_publishers(self, topic: str) -> int:
        with self._cv:
            return sum(p.topic == topic for p in self._pubs)

    def deliver(self, topic: str, msg, publisher_qos) -> int:
        """Hand `msg` to every matching subscription; returns how many got it."""
        with self._cv:
            targets = [s for s in self._subs if s.topic == topic and isinstance(msg, s.msg_type)
                       and not (_reliable(s.qos) and not _reliable(publisher_qos))]
            for s in targets:
                if s.node is not None:
                    s.queue.append(msg)
            self._cv.notify_all()
        for s in targets:
            if s.node is None:
                s.callback(msg)  # a peer in "another process": handled at once
        return len(targets)

    # -- peers (other processes) --
    def peer_subscribe(self, topic: str, msg_type: type, callback: Callable, qos=None) -> _Endpoint:
        endpoint = _Endpoint(topic, msg_type, qos or QoSProfile(depth=10), None, callback)
        self._add_subscription(endpoint)
        return endpoint

    def peer_publisher(self, topic: str, msg_type: type, qos=None) -> Callable[[Any], int]:
        endpoint = _Endpoint(topic, msg_type, qos or QoSProfile(depth=10))
        self._add_publisher(endpoint)

        def publish(msg) -> int:
            assert isinstance(msg, msg_type)
            return self.deliver(topic, msg, endpoint.qos)

        publish.endpoint = endpoint
        return publish

    def add_action_server(self, name: str, action_type: type, execute: Callable[[Any], tuple[int, Any]]) -> None:
        """`execute(goal) -> (GoalStatus, Result)` runs in a thread of its own, like franka_gripper's."""
        with self._cv:
            self._servers[name] = (action_type, execute)
            self._cv.notify_all()

    def remove_action_server(self, name: str) -> None:
        with self._cv:
            self._servers.pop(name, None)

    def _server(self, name: str, action_type: type):
        with self._cv:
            entry = self._servers.get(name)
            return entry[1] if entry and entry[0] is action_type else None

    # -- executor work --
    def _post(self, node, fn: Callable[[], None]) -> None:
        with self._cv:
            self._tasks[id(node)].append(fn)
            self._cv.notify_all()

    def _take_work(self, executor, timeout: float):
        """Callables ready for the executor's nodes; [] on timeout; None once the executor is shut down."""
        with self._cv:
            deadline = time.monotonic() + timeout
            while True:
                if executor._shutdown:
                    return None
                if not self.ok:
                    raise ExternalShutdownException()
                work = []
                for node in executor._nodes:
                    tasks = self._tasks[id(node)]
                    while tasks:
                        work.append(tasks.popleft())
                    for s in node._subscriptions:
                        while s.queue:
                            work.append(functools.partial(s.callback, s.queue.popleft()))
                if work or time.monotonic() >= deadline:
                    return work
                self._cv.wait(max(0.0, deadline - time.monotonic()))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """For tests: wait (no polling) until the graph changes so that `predicate()` holds."""
        with self._cv:
            return self._cv.wait_for(predicate, timeout_s)

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()


_ACTIVE: list[FakeRos] = []


def _ros() -> FakeRos:
    if not _ACTIVE:
        raise RuntimeError("The fake rclpy is used outside its install() block.")
    return _ACTIVE[-1]


# ---- rclpy objects ----------------------------------------------------------------------------
class Parameter(_Checked):
    _OWNER = "Parameter"
    Type = api.Parameter.Type

    def __init__(self, name: str, type_: Optional[api.Parameter.Type] = None, value: Any = None) -> None:
        api.check_call(api.spec_for("Parameter.__init__"), (name, type_, value), {}, name="Parameter.__init__")
        self._ros = _ACTIVE[-1] if _ACTIVE else None
        self._name, self._value = name, value
        self._type_ = _parameter_type(value) if type_ is None else type_

    name = property(lambda self: self._name)
    value = property(lambda self: self._value)
    type_ = property(lambda self: self._type_)

    def get_parameter_value(self) -> Any:
        T = self.Type
        return types.SimpleNamespace(type=int(self._type_), bool_value=self._value if self._type_ == T.BOOL else False,
                                     string_value=self._value if self._type_ == T.STRING else "",
                                     string_array_value=list(self._value) if self._type_ == T.STRING_ARRAY else [])


class RcutilsLogger(_Checked):
    _OWNER = "Logger"

    def __init__(self, ros: FakeRos, name: str):
        self._ros, self._name = ros, name

    def _log(self, level: str, message) -> bool:
        if not isinstance(message, str):
            raise TypeError(f"The message must be a str, got {type(message).__name__}")  # rcutils formats str only
        self._ros.logs.append((self._name, level, message))
        log.log(getattr(logging, level if level != "FATAL" else "CRITICAL"), "[%s] %s", self._name, message)
        return True

    @_api
    def debug(self, message: str, **kwargs) -> bool:
        return self._log("DEBUG", message)

    @_api
    def info(self, message: str, **kwargs) -> bool:
        return self._log("INFO", message)

    @_api
    def warning(self, message: str, **kwargs) -> bool:
        return self._log("WARNING", message)

    @_api
    def warn(self, message: str, **kwargs) -> bool:
        return self._log("WARNING", message)

    @_api
    def error(self, message: str, **kwargs) -> bool:
        return self._log("ERROR", message)

    @_api
    def fatal(self, message: str, **kwargs) -> bool:
        return self._log("FATAL", message)

    @_api
    def get_child(self, name: str) -> "RcutilsLogger":
        return RcutilsLogger(self._ros, f"{self._name}.{name}")


class Time(_Checked):
    _OWNER = "Time"

    def __init__(self, *, seconds=0, nanoseconds: int = 0, clock_type: Any = None) -> None:
        self._ros = _ACTIVE[-1] if _ACTIVE else None
        self._ns = int(seconds * 1e9) + int(nanoseconds)

    nanoseconds = property(lambda self: self._ns)

    @_api
    def to_msg(self):
        return message_class("builtin_interfaces/msg/Time")(sec=self._ns // 10**9, nanosec=self._ns % 10**9)

    @_api
    def seconds_nanoseconds(self):
        return self._ns // 10**9, self._ns % 10**9


class Clock(_Checked):
    _OWNER = "Clock"

    def __init__(self, ros: FakeRos):
        self._ros = ros

    @_api
    def now(self) -> Time:
        return Time(nanoseconds=time.time_ns())


class Publisher(_Checked):
    _OWNER = "Publisher"

    def __init__(self, node: "Node", endpoint: _Endpoint):
        self._ros, self._node, self._endpoint = node._ros, node, endpoint
        self.msg_type, self.topic_name, self.qos_profile = endpoint.msg_type, endpoint.topic, endpoint.qos
        self._destroyed = False

    @_api
    def publish(self, msg) -> None:
        if self._destroyed or self._node._destroyed:
            raise InvalidHandle("Tried to use a handle that has been destroyed.")
        if not self._ros.ok:
            raise RCLError("Failed to publish: publisher's context is invalid, at ./src/rcl/publisher.c:389")
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"Expected {self.msg_type}, got {type(msg)}")
        self._ros.deliver(self._endpoint.topic, msg, self._endpoint.qos)

    @_api
    def get_subscription_count(self) -> int:
        return self._ros.count_subscribers(self._endpoint.topic)

    @_api
    def destroy(self) -> None:
        self._node._destroy_publisher(self)


class Subscription(_Checked):
    _OWNER = "Subscription"

    def __init__(self, node: "Node", endpoint: _Endpoint):
        self._ros, self._node, self._endpoint = node._ros, node, endpoint
        self.msg_type, self.topic_name, self.qos_profile = endpoint.msg_type, endpoint.topic, endpoint.qos

    @_api
    def destroy(self) -> None:
        self._node._destroy_subscription(self)


def _check_msg_type(msg_type) -> None:
    if not (isinstance(msg_type, type) and issubclass(msg_type, _Message)):
        raise AttributeError(f"type object '{getattr(msg_type, '__name__', msg_type)}' has no attribute "
                             "'_CREATE_ROS_MESSAGE'")  # what check_is_valid_msg_type raises for a non-message


def _as_qos(qos) -> QoSProfile:
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, int) and not isinstance(qos, bool):
        if qos < 0:
            raise ValueError("history depth must be greater than or equal to zero")
        return QoSProfile(depth=qos)
    raise TypeError(f"Expected QoSProfile or int, but received {type(qos)!r}")


class Node(_Checked):
    _OWNER = "Node"

    def __init__(self, node_name: str, *, context: Any = None, cli_args: Optional[list] = None,
                 namespace: Optional[str] = None, use_global_arguments: bool = True, enable_rosout: bool = True,
                 start_parameter_services: bool = True, parameter_overrides: Optional[list] = None,
                 allow_undeclared_parameters: bool = False,
                 automatically_declare_parameters_from_overrides: bool = False) -> None:
        ros = _ros()
        api.check_call(api.spec_for("Node.__init__"), (node_name,),
                       dict(context=context, cli_args=cli_args, namespace=namespace, use_global_arguments=use_global_arguments,
                            enable_rosout=enable_rosout, start_parameter_services=start_parameter_services,
                            parameter_overrides=parameter_overrides, allow_undeclared_parameters=allow_undeclared_parameters,
                            automatically_declare_parameters_from_overrides=automatically_declare_parameters_from_overrides),
                       name="Node.__init__")
        ros._record("Node.__init__", (node_name,), {"namespace": namespace})
        if not ros.ok:
            raise NotInitializedException("cannot create node")
        if not re.fullmatch(_TOKEN, node_name):
            raise ValueError(f"node name '{node_name}' is invalid")
        local = _parse_ros_args(list(cli_args or ()))
        global_ = ros.global_arguments if use_global_arguments else None
        name, namespace = api.remap_node(local, global_, node_name, namespace or "/")
        self._ros, self._name, self._namespace = ros, name, namespace
        self._overrides = api.node_parameters([a for a in (global_, local) if a is not None],
                                              namespace.rstrip("/") + "/" + name)
        self._overrides.update({p.name: p.value for p in parameter_overrides or ()})
        self._parameters: dict[str, Parameter] = {}
        self._subscriptions: list[_Endpoint] = []
        self._publishers: list[Publisher] = []
        self._logger = RcutilsLogger(ros, ".".join([*filter(None, namespace.split("/")), name]))  # rcl: ns.name
        self._clock = Clock(ros)
        self._destroyed = False
        self.executor = None
        ros.nodes.append(self)

    def _resolve(self, topic: str) -> str:
        return self._ros.resolve(topic, self._name, self._namespace)

    def _alive(self) -> None:
        if self._destroyed:
            raise InvalidHandle("Tried to use a handle that has been destroyed.")

    @_api
    def get_name(self) -> str:
        return self._name

    @_api
    def get_namespace(self) -> str:
        return self._namespace

    @_api
    def get_clock(self) -> Clock:
        return self._clock

    @_api
    def get_logger(self) -> RcutilsLogger:
        return self._logger

    @_api
    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None, ignore_override: bool = False):
        if name in self._parameters:
            raise ParameterAlreadyDeclaredException([name])
        static = isinstance(value, api.Parameter.Type)
        declared_type = value if static else _parameter_type(value)
        current = None if static else value
        if not ignore_override and name in self._overrides:
            current = self._overrides[name]
            given = _parameter_type(current)
            if declared_type != api.Parameter.Type.NOT_SET and given != declared_type:
                raise InvalidParameterTypeException(Parameter(name, value=current), declared_type.name)
        parameter = Parameter(name, declared_type, current)
        self._parameters[name] = parameter
        return parameter

    @_api
    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    @_api
    def get_parameter(self, name: str):
        if name not in self._parameters:
            raise ParameterNotDeclaredException(name)
        parameter = self._parameters[name]
        if parameter.value is None and parameter.type_ != api.Parameter.Type.NOT_SET:
            raise ParameterUninitializedException(name)
        return parameter

    @_api
    def get_parameter_or(self, name: str, alternative_value=None):
        parameter = self._parameters.get(name)
        if parameter is None or parameter.value is None:
            return alternative_value if alternative_value is not None else Parameter(name, api.Parameter.Type.NOT_SET)
        return parameter

    @_api
    def create_publisher(self, msg_type, topic: str, qos_profile, *, callback_group=None, event_callbacks=None,
                         qos_overriding_options=None, publisher_class=None) -> Publisher:
        self._alive()
        _check_msg_type(msg_type)
        endpoint = _Endpoint(self._resolve(topic), msg_type, _as_qos(qos_profile), self)
        self._ros._add_publisher(endpoint)
        publisher = Publisher(self, endpoint)
        self._publishers.append(publisher)
        return publisher

    @_api
    def create_subscription(self, msg_type, topic: str, callback, qos_profile, *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None, raw: bool = False) -> Subscription:
        self._alive()
        _check_msg_type(msg_type)
        if not callable(callback):
            raise TypeError("callback must be callable")
        qos = _as_qos(qos_profile)
        endpoint = _Endpoint(self._resolve(topic), msg_type, qos, self, callback, collections.deque(maxlen=_depth(qos)))
        self._subscriptions.append(endpoint)
        self._ros._add_subscription(endpoint)
        return Subscription(self, endpoint)

    @_api
    def create_timer(self, timer_period_sec: float, callback, callback_group=None, clock=None):
        raise NotImplementedError("The fake Node has no timers; nothing in dsrl_real needs one.")

    def _destroy_publisher(self, publisher: Publisher) -> bool:
        if publisher not in self._publishers:
            return False
        self._publishers.remove(publisher)
        publisher._destroyed = True
        self._ros._remove(publisher._endpoint)
        return True

    def _destroy_subscription(self, subscription: Subscription) -> bool:
        with self._ros._cv:  # the executor iterates the list under this lock
            if subscription._endpoint not in self._subscriptions:
                return False
            self._subscriptions.remove(subscription._endpoint)
            self._ros._remove(subscription._endpoint)
        return True

    @_api
    def destroy_publisher(self, publisher) -> bool:
        return self._destroy_publisher(publisher)

    @_api
    def destroy_subscription(self, subscription) -> bool:
        return self._destroy_subscription(subscription)

    @_api
    def destroy_node(self) -> None:
        for publisher in list(self._publishers):
            self._destroy_publisher(publisher)
        with self._ros._cv:
            for endpoint in list(self._subscriptions):
                self._ros._remove(endpoint)
            self._subscriptions.clear()
        self._destroyed = True
        if self.executor is not None:
            self.executor._nodes = [n for n in self.executor._nodes if n is not self]
        self._ros._notify()

    @_api
    def count_publishers(self, topic_name: str) -> int:
        return self._ros.count_publishers(self._resolve(topic_name))

    @_api
    def count_subscribers(self, topic_name: str) -> int:
        return self._ros.count_subscribers(self._resolve(topic_name))


class Future(_Checked):
    _OWNER = "Future"

    def __init__(self, *, executor: Any = None) -> None:
        self._ros = _ros()
        self._lock = threading.Lock()
        self._done, self._cancelled = False, False
        self._result, self._exception = None, None
        self._callbacks: list = []

    def _complete(self, result=None, exception=None) -> None:
        """What set_result/set_exception do; the fake's own machinery calls this (unrecorded)."""
        with self._lock:
            self._result, self._exception, self._done = result, exception, True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def _on_done(self, callback) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    @_api
    def done(self) -> bool:
        return self._done

    @_api
    def cancelled(self) -> bool:
        return self._cancelled

    @_api
    def cancel(self) -> None:
        if not self._done:
            self._cancelled = True
            self._complete()

    @_api
    def result(self):
        if self._exception is not None:
            raise self._exception
        return self._result

    @_api
    def exception(self):
        return self._exception

    @_api
    def set_result(self, result) -> None:
        self._complete(result=result)

    @_api
    def set_exception(self, exception) -> None:
        self._complete(exception=exception)

    @_api
    def add_done_callback(self, callback) -> None:
        self._on_done(callback)


class _Executor(_Checked):
    _OWNER = "Executor"

    def __init__(self, ros: FakeRos):
        self._ros = ros
        self._nodes: list[Node] = []
        self._shutdown = False

    @_api
    def add_node(self, node_or_nodes) -> bool:
        if node_or_nodes in self._nodes:
            return False
        self._nodes.append(node_or_nodes)
        node_or_nodes.executor = self
        self._ros._notify()
        return True

    @_api
    def remove_node(self, node) -> None:
        self._nodes = [n for n in self._nodes if n is not node]

    @_api
    def get_nodes(self) -> list:
        return list(self._nodes)

    def _run_once(self, timeout: float) -> bool:
        work = self._ros._take_work(self, timeout)
        if work is None:
            return False
        for fn in work:
            fn()
        return True

    @_api
    def spin(self) -> None:
        while self._run_once(0.1):
            pass

    @_api
    def spin_once(self, timeout_sec: Optional[float] = None) -> None:
        self._run_once(1e9 if timeout_sec is None else float(timeout_sec))

    @_api
    def spin_until_future_complete(self, future, timeout_sec: Optional[float] = None) -> None:
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not future.done() and (deadline is None or time.monotonic() < deadline):
            if not self._run_once(0.05):
                return

    @_api
    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        self._shutdown = True
        self._ros._notify()
        return True

    @_api
    def wake(self) -> None:
        self._ros._notify()


class SingleThreadedExecutor(_Executor):
    _OWNER = "SingleThreadedExecutor"

    def __init__(self, *, context: Any = None) -> None:
        ros = _ros()
        api.check_call(api.spec_for("SingleThreadedExecutor.__init__"), (), {"context": context})
        ros._record("SingleThreadedExecutor.__init__", (), {"context": context})
        super().__init__(ros)


class MultiThreadedExecutor(_Executor):
    _OWNER = "MultiThreadedExecutor"

    def __init__(self, num_threads: Optional[int] = None, *, context: Any = None) -> None:
        ros = _ros()
        api.check_call(api.spec_for("MultiThreadedExecutor.__init__"), (num_threads,), {"context": context})
        ros._record("MultiThreadedExecutor.__init__", (num_threads,), {"context": context})
        super().__init__(ros)


class ClientGoalHandle(_Checked):
    _OWNER = "ClientGoalHandle"

    def __init__(self, client: "ActionClient", goal_id: int, accepted: bool, outcome: "Future"):
        self._ros, self._client, self._goal_id, self._accepted = client._ros, client, goal_id, accepted
        self._outcome = outcome  # completed by the server thread with a GetResultResponse
        self._status = 1 if accepted else 0

    goal_id = property(lambda self: self._goal_id)
    accepted = property(lambda self: self._accepted)
    status = property(lambda self: self._status)

    @_api
    def get_result_async(self) -> Future:
        future = Future()
        node = self._client._node

        def relay(outcome: Future) -> None:  # the response reaches us through our executor only
            response = outcome._result
            self._ros._post(node, lambda: (setattr(self, "_status", response.status), future._complete(response)))

        self._outcome._on_done(relay)
        return future

    @_api
    def cancel_goal_async(self) -> Future:
        raise NotImplementedError("The fake action client does not cancel goals; dsrl_real never does.")

    @_api
    def get_result(self):
        raise NotImplementedError("Blocking get_result() deadlocks in a callback; dsrl_real uses get_result_async().")

    @_api
    def cancel_goal(self):
        raise NotImplementedError


class ActionClient(_Checked):
    _OWNER = "ActionClient"
    _ids = itertools.count(1)

    def __init__(self, node, action_type, action_name: str, *, callback_group=None, goal_service_qos_profile=None,
                 result_service_qos_profile=None, cancel_service_qos_profile=None, feedback_sub_qos_profile=None,
                 status_sub_qos_profile=None) -> None:
        ros = _ros()
        kwargs = dict(callback_group=callback_group, goal_service_qos_profile=goal_service_qos_profile,
                      result_service_qos_profile=result_service_qos_profile,
                      cancel_service_qos_profile=cancel_service_qos_profile,
                      feedback_sub_qos_profile=feedback_sub_qos_profile, status_sub_qos_profile=status_sub_qos_profile)
        api.check_call(api.spec_for("ActionClient.__init__"), (node, action_type, action_name), kwargs)
        ros._record("ActionClient.__init__", (node, action_type, action_name), {})
        if not (isinstance(action_type, type) and all(hasattr(action_type, p) for p in ("Goal", "Result", "Feedback"))):
            raise AttributeError(f"'{action_type}' is not an action type (it has no Goal/Result/Feedback)")
        node._alive()
        self._ros, self._node, self._action_type = ros, node, action_type
        self._name = node._resolve(action_name)
        self._destroyed = False

    @_api
    def server_is_ready(self) -> bool:
        return not self._destroyed and self._ros._server(self._name, self._action_type) is not None

    @_api
    def wait_for_server(self, timeout_sec: Optional[float] = None) -> bool:
        return self._ros.wait_for(lambda: self._ros._server(self._name, self._action_type) is not None or not self._ros.ok,
                                  1e9 if timeout_sec is None else float(timeout_sec)) and self.server_is_ready()

    @_api
    def send_goal_async(self, goal, feedback_callback=None, goal_uuid=None) -> Future:
        if not isinstance(goal, self._action_type.Goal):
            raise TypeError()
        if self._destroyed:
            raise InvalidHandle("Tried to use a handle that has been destroyed.")
        response = Future()
        execute = self._ros._server(self._name, self._action_type)
        if execute is None:
            return response  # like rclpy: the request waits for a server that may never come
        outcome = Future()
        handle = ClientGoalHandle(self, next(self._ids), True, outcome)

        def serve() -> None:
            status, result = execute(goal)
            assert isinstance(result, self._action_type.Result)
            outcome._complete(GetResultResponse(status, result))

        self._ros._post(self._node, lambda: response._complete(handle))  # franka_gripper accepts every goal
        threading.Thread(target=serve, name=f"fake-action{self._name}", daemon=True).start()
        return response

    @_api
    def send_goal(self, goal, **kwargs):
        raise NotImplementedError("Blocking send_goal() deadlocks in a callback; dsrl_real uses send_goal_async().")

    @_api
    def destroy(self) -> None:
        self._destroyed = True


# ---- module functions -------------------------------------------------------------------------
def _parse_ros_args(args: list[str]) -> api.RosArguments:
    """`--ros-args` as rcl reads them (ros_api.parse_ros_arguments); the fake renames nodes but routes no topics."""
    try:
        parsed = api.parse_ros_arguments(args)
    except ValueError as err:
        raise RCLError(str(err)) from None
    unsupported = [rule for rule in parsed.remaps if rule.source not in ("__node", "__ns")]
    if unsupported:
        raise NotImplementedError(f"The rclpy fake applies only __node and __ns remap rules, not {unsupported}.")
    return parsed


def _functions(ros: FakeRos) -> dict[str, Callable]:
    def checked(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            api.check_call(api.spec_for(fn.__name__), args, kwargs, name=fn.__name__)
            ros._record(fn.__name__, args, kwargs)
            return fn(*args, **kwargs)

        return wrapper

    def init(*, args=None, context=None, domain_id=None, signal_handler_options=None):
        if ros.ok:
            raise RuntimeError("Context.init() must only be called once")
        ros.global_arguments = _parse_ros_args(list(sys.argv if args is None else args))
        ros.signal_handlers = SignalHandlerOptions.ALL if signal_handler_options is None else signal_handler_options
        ros.initialized, ros.shut_down = True, False

    def shutdown(*, context=None, uninstall_handlers=None):
        if not ros.ok:
            raise RuntimeError("Context must be initialized before it can be shutdown")
        ros._shutdown_context()

    def try_shutdown(*, context=None, uninstall_handlers=None):
        if ros.ok:
            ros._shutdown_context()

    def ok(*, context=None):
        return ros.ok

    def create_node(node_name, *, context=None, cli_args=None, namespace=None, use_global_arguments=True,
                    enable_rosout=True, start_parameter_services=True, parameter_overrides=None,
                    allow_undeclared_parameters=False, automatically_declare_parameters_from_overrides=False):
        return Node(node_name, context=context, cli_args=cli_args, namespace=namespace,
                    use_global_arguments=use_global_arguments, enable_rosout=enable_rosout,
                    start_parameter_services=start_parameter_services, parameter_overrides=parameter_overrides,
                    allow_undeclared_parameters=allow_undeclared_parameters,
                    automatically_declare_parameters_from_overrides=automatically_declare_parameters_from_overrides)

    def spin(node, executor=None):
        executor = executor or SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()

    def spin_once(node, *, executor=None, timeout_sec=None):
        executor = executor or SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin_once(timeout_sec)

    def spin_until_future_complete(node, future, executor=None, timeout_sec=None):
        executor = executor or SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec)

    return {f.__name__: checked(f) for f in (init, shutdown, try_shutdown, ok, create_node, spin, spin_once,
                                              spin_until_future_complete)}


def _modules(ros: FakeRos) -> dict[str, types.ModuleType]:
    names = ["rclpy", "rclpy.node", "rclpy.executors", "rclpy.qos", "rclpy.action", "rclpy.action.client",
             "rclpy.parameter", "rclpy.task", "rclpy.exceptions", "rclpy.signals", "rclpy.time", "rclpy.clock"]
    packages = sorted({t.split("/")[0] for t in (*api.MESSAGES, *api.ACTIONS)})
    for package in packages:
        names += [package, f"{package}.msg"] + ([f"{package}.action"] if any(t.startswith(package) for t in api.ACTIONS) else [])
    mods = {name: types.ModuleType(name, f"Fake of {name} (fakes.rclpy_fake).") for name in names}
    for name, mod in mods.items():
        if name in ("rclpy", "rclpy.action") or name in packages:
            mod.__path__ = []
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(mods[parent], child, mod)
    rclpy = mods["rclpy"]
    for fname, fn in _functions(ros).items():
        setattr(rclpy, fname, fn)
    rclpy.Parameter = Parameter
    mods["rclpy.node"].Node = Node
    for name in ("SingleThreadedExecutor", "MultiThreadedExecutor", "ExternalShutdownException"):
        setattr(mods["rclpy.executors"], name, globals()[name])
    mods["rclpy.executors"].Executor = _Executor
    qos = mods["rclpy.qos"]
    for name in ("QoSProfile", "ReliabilityPolicy", "HistoryPolicy", "DurabilityPolicy", "qos_profile_sensor_data",
                 "qos_profile_system_default"):
        setattr(qos, name, globals()[name])
    mods["rclpy.action"].ActionClient = ActionClient
    mods["rclpy.action.client"].ActionClient = ActionClient
    mods["rclpy.action.client"].ClientGoalHandle = ClientGoalHandle
    mods["rclpy.parameter"].Parameter = Parameter
    mods["rclpy.task"].Future = Future
    for name in ("NotInitializedException", "ParameterNotDeclaredException", "ParameterAlreadyDeclaredException",
                 "ParameterUninitializedException", "InvalidParameterTypeException", "InvalidTopicNameException",
                 "InvalidHandle"):
        setattr(mods["rclpy.exceptions"], name, globals()[name])
    mods["rclpy.signals"].SignalHandlerOptions = SignalHandlerOptions
    mods["rclpy.time"].Time = Time
    mods["rclpy.clock"].Clock = Clock
    for type_name in api.MESSAGES:
        package, kind, name = type_name.split("/")
        setattr(mods[f"{package}.{kind}"], name, message_class(type_name))
    for type_name in api.ACTIONS:
        package, kind, name = type_name.split("/")
        setattr(mods[f"{package}.{kind}"], name, action_class(type_name))
    return mods


@contextlib.contextmanager
def install():
    """Make `import rclpy` (and the message packages) give this fake for the duration of the block.

    Yields the `FakeRos` (call log, logs, graph). On exit peers stop, the context shuts down (so
    spinning threads end) and the previous modules, if any, come back.
    """
    ros = FakeRos()
    with swapped(_modules(ros)):
        _ACTIVE.append(ros)
        try:
            yield ros
        finally:
            for peer in list(ros.peers):
                peer.stop()
            ros._shutdown_context()
            _ACTIVE.remove(ros)


# ---- simulated peers ---------------------------------------------------------------------------
def _stamp():
    ns = time.time_ns()
    return message_class("builtin_interfaces/msg/Time")(sec=ns // 10**9, nanosec=ns % 10**9)


def _rotation_to_quaternion(rot: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return float(x), float(y), float(z), float(w)


def _quaternion_to_rotation(q) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()


class _Peer:
    """A simulated process on the graph, publishing from a thread of its own at `rate_hz`."""

    def __init__(self, ros: FakeRos, rate_hz: float):
        self.ros, self.period_s = ros, 1.0 / rate_hz
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._cv = threading.Condition()
        self.ticks = 0

    def start(self):
        self.ros.peers.append(self)
        self._thread = threading.Thread(target=self._run, name=f"fake-{type(self).__name__}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._paused.is_set() and self.ros.ok:
                self._tick()
                with self._cv:
                    self.ticks += 1
                    self._cv.notify_all()
            self._stop.wait(self.period_s)

    def _tick(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop publishing (a crashed driver, a pulled cable), but stay on the graph."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def wait_ticks(self, n: int, timeout_s: float = 5.0) -> bool:
        with self._cv:
            target = self.ticks + n
            return self._cv.wait_for(lambda: self.ticks >= target, timeout_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self in self.ros.peers:
            self.ros.peers.remove(self)


FR3_READY_JOINTS = [0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]


class FakeFranka(_Peer):
    """franka_ros2 as a client sees it: a Cartesian pose controller listening on `command_topic`
    (it tracks each target at once), the robot-state broadcaster's best-effort `current_pose` and
    `measured_joint_states`, and the franka_gripper node (actions homing/move/grasp, `joint_states`).
    Leave out parts to play a driver that is not (fully) running."""

    def __init__(self, ros: FakeRos, *, command_topic: str = "/cartesian_impedance_controller/equilibrium_pose",
                 controller: bool = True, broadcaster: bool = True, gripper: bool = True,
                 xyz=(0.45, 0.0, 0.35), rpy=(math.pi, 0.0, 0.0), object_width: float | None = None,
                 gripper_succeeds: bool = True, rate_hz: float = 200.0):
        super().__init__(ros, rate_hz)
        from dsrl_real.geometry import pose_to_matrix

        self.command_topic = command_topic
        self.parts = {"controller": controller, "broadcaster": broadcaster, "gripper": gripper}
        self.pose = pose_to_matrix(xyz, rpy)
        self.width = api.FRANKA_HAND_MAX_WIDTH_M
        self.object_width = object_width  # what the fingers close on; None: nothing between them
        self.gripper_succeeds = gripper_succeeds
        self.targets: list = []  # every PoseStamped the controller received
        self.gripper_goals: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        PoseStamped = message_class("geometry_msgs/msg/PoseStamped")
        JointState = message_class("sensor_msgs/msg/JointState")
        self._pose_msg, self._joint_msg = PoseStamped, JointState
        if controller:
            ros.peer_subscribe(command_topic, PoseStamped, self._on_target)
        if broadcaster:
            best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
            self._publish_pose = ros.peer_publisher(api.FRANKA_POSE_TOPIC, PoseStamped, best_effort)
            self._publish_joints = ros.peer_publisher(api.FRANKA_JOINT_STATE_TOPIC, JointState, best_effort)
        if gripper:
            ns = api.FRANKA_GRIPPER_NAMESPACE
            self._publish_fingers = ros.peer_publisher(f"{ns}/joint_states", JointState, qos_profile_sensor_data)
            for name in api.FRANKA_GRIPPER_ACTIONS:
                ros.add_action_server(f"{ns}/{name}", action_class(f"franka_msgs/action/{name.capitalize()}"),
                                      functools.partial(self._gripper_action, name))

    # -- controller --
    def _on_target(self, msg) -> None:
        pos, q = msg.pose.position, msg.pose.orientation
        with self._lock:
            self.targets.append(msg)
            self.pose[:3, :3] = _quaternion_to_rotation(q)
            self.pose[:3, 3] = [pos.x, pos.y, pos.z]
        self.ros._notify()

    def wait_for_targets(self, n: int, timeout_s: float = 5.0) -> bool:
        return self.ros.wait_for(lambda: len(self.targets) >= n, timeout_s)

    # -- gripper --
    def _gripper_action(self, name: str, goal) -> tuple[int, Any]:
        Result = action_class(f"franka_msgs/action/{name.capitalize()}").Result
        with self._lock:
            self.gripper_goals.append((name, goal))
            if not self.gripper_succeeds:
                return 6, Result(success=False, error="libfranka: gripper command failed")
            if name == "homing":
                self.width = api.FRANKA_HAND_MAX_WIDTH_M
            elif name == "move":
                self.width = min(max(goal.width, 0.0), api.FRANKA_HAND_MAX_WIDTH_M)
            else:  # grasp: close until the fingers meet the object (or each other)
                self.width = self.object_width if self.object_width is not None else 0.0
                eps = goal.epsilon
                if not goal.width - eps.inner < self.width < goal.width + eps.outer:
                    return 6, Result(success=False, error="")  # franka::Gripper::grasp returned false
        self.ros._notify()
        return 4, Result(success=True, error="")

    # -- broadcaster / gripper state --
    def _tick(self) -> None:
        now = _stamp()
        Header = message_class("std_msgs/msg/Header")
        with self._lock:
            pose, width = self.pose.copy(), self.width
        if self.parts["broadcaster"]:
            msg = self._pose_msg(header=Header(stamp=now, frame_id="fr3_link0"))
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose[:3, 3])
            (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
             msg.pose.orientation.w) = _rotation_to_quaternion(pose[:3, :3])
            self._publish_pose(msg)
            self._publish_joints(self._joint_msg(header=Header(stamp=now), name=[f"fr3_joint{i}" for i in range(1, 8)],
                                                 position=list(FR3_READY_JOINTS), velocity=[0.0] * 7, effort=[0.0] * 7))
        if self.parts["gripper"]:
            self._publish_fingers(self._joint_msg(header=Header(stamp=now), name=["fr3_finger_joint1", "fr3_finger_joint2"],
                                                  position=[width / 2, width / 2], velocity=[0.0, 0.0], effort=[0.0, 0.0]))


ENCODING_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_message(rgb: np.ndarray, encoding: str = "rgb8", row_padding: int = 0, frame_id: str = "camera"):
    """A sensor_msgs/Image holding the HxWx3 uint8 RGB `rgb` in `encoding` (rows padded by `row_padding` bytes)."""
    rgb = np.asarray(rgb, np.uint8)
    if encoding in ("rgb8", "rgba8"):
        pixels = rgb
    elif encoding in ("bgr8", "bgra8"):
        pixels = rgb[..., ::-1]
    elif encoding == "mono8":
        pixels = rgb.mean(axis=2, keepdims=True).astype(np.uint8)
    else:
        pixels = rgb  # wrong on purpose: lets tests send an encoding the reader must refuse
    if ENCODING_CHANNELS.get(encoding) == 4:
        pixels = np.concatenate([pixels, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    height, width = rgb.shape[:2]
    rows = pixels.reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    Image, Header = message_class("sensor_msgs/msg/Image"), message_class("std_msgs/msg/Header")
    return Image(header=Header(stamp=_stamp(), frame_id=frame_id), height=height,
                 width=width, encoding=encoding, is_bigendian=0, step=rows.shape[1],
                 data=np.ascontiguousarray(rows).tobytes())


class FakeImageTopic(_Peer):
    """A camera driver publishing sensor_msgs/Image on `topic` (reliable, like realsense2_camera's default).
    `source()` returns an HxWx3 uint8 RGB frame."""

    def __init__(self, ros: FakeRos, topic: str, source: Callable[[], np.ndarray] | np.ndarray, encoding: str = "rgb8",
                 fps: float = 30.0, row_padding: int = 0, qos=None):
        super().__init__(ros, fps)
        self.source, self.encoding, self.row_padding = source, encoding, row_padding
        self._publish = ros.peer_publisher(topic, message_class("sensor_msgs/msg/Image"), qos or QoSProfile(depth=10))

    def _tick(self) -> None:
        image = self.source() if callable(self.source) else self.source
        self._publish(image_message(image, self.encoding, self.row_padding))


__all__ = ["Call", "ExternalShutdownException", "FakeFranka", "FakeImageTopic", "FakeRos", "GetResultResponse",
           "image_message", "install", "message_class", "action_class"]
