"""Workflows: several declared jobs run as one unit, declared under ``workflows:``.

- :mod:`~taskkit.workflows.validate`: the checks of jobs.yaml's ``workflows:`` (steps,
  jobs, cycles, bindings against each job's signature), as file:line problems;
- :mod:`~taskkit.workflows.plan`: the order of the steps and the jobs of one run (no IO);
- :mod:`~taskkit.workflows.runs`: starting a run on RQ's dependencies, and reading where
  it stands (status, results, each step's jobs);
- :mod:`~taskkit.workflows.steps`: the worker's side: a step's upstream checked and its
  fan-in results read when it runs;
- :mod:`~taskkit.workflows.eager`: eager mode, the whole run in order in the caller.

Nothing is imported here, so that the loader can use the checks without the rest.
"""
