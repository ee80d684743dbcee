"""SimplerEnv side of the evaluation: a runner that drives real SimplerEnv through `selfflow-robot serve`.

Runs in SimplerEnv's own environment (sapien 2.2.2, numpy<2, gymnasium<1, Python <= 3.11), so it
imports only numpy, the light policy client and SimplerEnv itself. See docs/simpler.md.
"""
