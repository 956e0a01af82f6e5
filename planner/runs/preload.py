"""What the worker processes' fork server imports once (planner.runs.workers.PRELOAD): everything a
case needs (run_case, the solver, the plan metrics, the unit registry), so each forked worker starts with
it loaded. Importing this module is all it does. Should any of it fail here (the server would die on any
error but ImportError), the server carries on and each worker imports what it needs itself, as a spawned
one would, and reports the error with its case."""

try:
    from planner.core.units import parse_quantity
    from planner.placement import solve  # noqa: F401  (imported for the workers)
    from planner.plans import metrics  # noqa: F401
    from planner.runs import cache  # noqa: F401

    parse_quantity("1 W", "watts")  # builds the pint registry once, in the server
except KeyboardInterrupt:  # Ctrl-C while the server imports: the parent got it too and reports it
    import os

    os._exit(130)
except Exception:  # noqa: BLE001, S110  (see the docstring: the workers import it again and report)
    pass
