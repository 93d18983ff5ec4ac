"""Closing the loop after a search: lineage you can query, and (below the search layer,
where the search driver can reach them) warm starts (:mod:`evodiff_ray.search.seeds`) and
automatic registration (:mod:`evodiff_ray.tracking.registration`).

Continuous adaptation (``evodiff-ray adapt MODEL``), one concept per module:
``triggers`` (pure: when a cycle starts), ``state`` (the controller's state file),
``cycle`` (one cycle as a state machine, its side effects injected), ``observe`` (the
watched dataset's digest, production's evidence in Redis), ``effects`` (the real search,
registry, canary and MLflow), ``options`` (a controller's options, a cycle's search config)
and ``controller`` (the long-running loop). ``adapt`` sits beside ``serving`` and uses it
(lazily); ``serving`` never imports ``adapt``.
"""
