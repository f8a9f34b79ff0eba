"""dsrl_real: real-robot DSRL with learned rewards."""

import gymnasium as gym

__version__ = "0.1.0"

for _task, _name in (("monkey", "WidowXMonkey"), ("drawer", "WidowXDrawer")):
    if f"dsrl_real/{_name}-v0" not in gym.registry:
        gym.register(id=f"dsrl_real/{_name}-v0", entry_point="dsrl_real.envs.make:make_sim_env", kwargs={"task": _task})
