"""SimplerEnv side of the evaluation: code that runs in real SimplerEnv's own environment.

That environment (sapien 2.2.2, numpy<2, gymnasium<1, Python <= 3.11) need not have selfflow-robot installed,
so these modules are run by file path and import only numpy, matplotlib / PIL, the light policy client and
SimplerEnv itself (never a sibling module):

- `runner.py`: drives SimplerEnv's own evaluator with a policy served by `selfflow-robot serve`
  (`scripts/simpler/*.sh`; docs/simpler.md);
- `fidelity.py`: the SimplerEnv half of the port-fidelity measurement (`scripts/simpler_fidelity.py`;
  docs/simpler_fidelity.md).
"""
