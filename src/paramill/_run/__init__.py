"""The steps of a run (``paramill.api.run`` calls them in order): ``options`` (RunOptions),
``plan`` (parameters, paths, secrets), ``prepare`` (the notebook), ``execution`` (engine and
kernel), ``result`` (RunResult, RunStatus), ``output`` (every write), ``paths``, ``cancel``."""
