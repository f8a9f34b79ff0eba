"""Learning agents. `dsrl`: SAC in a frozen diffusion policy's noise space (DSRL)."""
