"""ROS 2 plumbing shared by the adapters that talk to topics (Franka, image topics) and the `dsrl_real_node`.

One rclpy node per process, spun by an executor in a background thread so that subscriptions and
action responses arrive while the control loop runs in the main thread. Under `dsrl_real_node` that
node is the "dsrl_real" node itself; when a Franka or an image-topic camera is used from the plain
`dsrl-real` command, `shared_node()` starts one on first use and shuts it down at exit.

rclpy is initialised without its signal handlers: they would shut the context down on Ctrl-C,
after which the arm could no longer be told to stop. Ctrl-C stays a KeyboardInterrupt in the main
thread, and the code that catches it stops the arm before ROS goes down.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

NODE_NAME = "dsrl_real"


def import_rclpy():
    """rclpy, or an ImportError that says how to get it."""
    try:
        import rclpy
        import rclpy.executors
        import rclpy.node
        import rclpy.signals  # noqa: F401 - used through the package
    except ImportError as err:
        raise ImportError(
            "This needs ROS 2's Python client library `rclpy`, which is not on PyPI: install ROS 2 Humble "
            "(https://docs.ros.org/en/humble/Installation.html) and run `source /opt/ros/humble/setup.bash` "
            "(and your workspace's install/setup.bash) before starting."
        ) from err
    return rclpy


def import_messages(module: str, *names: str, package_hint: str = ""):
    """Message classes from e.g. 'sensor_msgs.msg', or an ImportError naming the ROS package to install."""
    try:
        mod = __import__(module, fromlist=list(names))
        return tuple(getattr(mod, name) for name in names)
    except (ImportError, AttributeError) as err:
        package = module.split(".")[0]
        hint = package_hint or f"sudo apt install ros-humble-{package.replace('_', '-')}"
        raise ImportError(f"The ROS 2 message package `{package}` is missing ({err}); install it ({hint}) and "
                          "source its setup.bash before starting.") from err


class RosRuntime:
    """A node, its executor and the thread spinning it.

    `on_external_shutdown(reason)` is called (from the spin thread) if spinning ends while nobody
    asked it to, e.g. the ROS context was shut down from outside.
    """

    def __init__(self, node, executor, *, owns_context: bool, on_external_shutdown: Callable[[str], None] | None = None):
        self.node, self.executor, self.owns_context = node, executor, owns_context
        self.on_external_shutdown = on_external_shutdown
        self._closing = threading.Event()
        executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name="ros-spin", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, node_name: str = NODE_NAME, args: list[str] | None = None) -> "RosRuntime":
        rclpy = import_rclpy()
        owns = not rclpy.ok()
        if owns:
            rclpy.init(args=args, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        node = rclpy.node.Node(node_name)
        return cls(node, rclpy.executors.SingleThreadedExecutor(), owns_context=owns)

    def _spin(self) -> None:
        reason = "the ROS 2 context was shut down"
        try:
            self.executor.spin()
        except Exception as err:  # noqa: BLE001 - ExternalShutdownException, or a callback that raised
            if type(err).__name__ != "ExternalShutdownException":
                reason = f"a ROS callback failed ({type(err).__name__}: {err})"
        if not self._closing.is_set() and self.on_external_shutdown is not None:
            self.on_external_shutdown(reason)

    @property
    def spinning(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop spinning, destroy the node and, if this runtime initialised rclpy, shut it down."""
        if self._closing.is_set():
            return
        self._closing.set()
        rclpy = import_rclpy()
        for release in (lambda: self.executor.shutdown(timeout_sec=1.0), self.node.destroy_node):
            try:
                release()
            except Exception:  # noqa: BLE001 - the context may already be down (Interbotix shuts it down on close)
                pass
        if self.owns_context:
            rclpy.try_shutdown()
        self._thread.join(2.0)


_shared: RosRuntime | None = None
_lock = threading.Lock()


def set_runtime(runtime: RosRuntime | None) -> None:
    """Make `runtime` the one `shared_node()` returns (the ROS node sets itself; None forgets it)."""
    global _shared
    with _lock:
        _shared = runtime


def current_runtime() -> RosRuntime | None:
    return _shared


def shared_node() -> Any:
    """The process's spinning node, started (with rclpy) on first use if no runtime was set."""
    global _shared
    with _lock:
        if _shared is None or not _shared.spinning:
            _shared = RosRuntime.start()
            atexit.register(_shared.close)
        return _shared.node


def wait_future(future, timeout_s: float) -> bool:
    """Wait (from a thread that is not the executor's) until an rclpy Future is done; False on timeout."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout_s)
