"""DSRL (Wagenmaker et al. 2025): SAC whose action is the initial noise of a frozen diffusion policy's sampler.

Math as pure functions (`distributions`, `losses`, `optim`), one gradient step per algorithm (`sac`, `na`),
the agent (`agent.DSRLAgent`) around them; the design notes are in docs/agent.md."""

from .agent import DSRLAgent

__all__ = ["DSRLAgent"]
