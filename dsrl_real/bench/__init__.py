"""Benchmarks that print JSON, one module each: `dsrl-real bench NAME` runs `BENCHMARKS[NAME]`. Numbers about
speed live here, never in tests."""

from .base_policy import bench_base_policy
from .checkpoint import bench_checkpoint
from .detector import bench_detector
from .fleet import bench_fleet
from .learning import bench_learning
from .policy_latency import bench_policy_latency
from .recording import bench_recording
from .reward_trust import bench_reward_trust
from .reward_wait import bench_reward_wait
from .robot_idle import bench_robot_idle
from .sim import bench_sim
from .throughput import bench_throughput

BENCHMARKS = {
    "sim": bench_sim,
    "base-policy": bench_base_policy,
    "policy-latency": bench_policy_latency,
    "throughput": bench_throughput,
    "learning": bench_learning,
    "reward-trust": bench_reward_trust,
    "reward-wait": bench_reward_wait,
    "detector": bench_detector,
    "recording": bench_recording,
    "robot-idle": bench_robot_idle,
    "fleet": bench_fleet,
    "checkpoint": bench_checkpoint,
}

__all__ = ["BENCHMARKS"]
