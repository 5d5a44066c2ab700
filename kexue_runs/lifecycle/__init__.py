"""The run lifecycle: one run from its config to a complete run folder (runner), and sweeps of runs that end
in a verdict (sweeps), with what they need on the way: phases, faults, code hash, data parallelism, trackers."""
