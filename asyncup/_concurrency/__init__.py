"""Structured-concurrency primitives for every layer above the core: ``stages.run_stages``
(the first failure stops the others and is raised as itself, never an ExceptionGroup),
``shield.shielded`` (clean-up that finishes, bounded in time, whatever cancellation comes) and
``deadlines.Deadlines`` (many requests' deadlines on one coarse timer).
"""
