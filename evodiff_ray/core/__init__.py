"""The floor of the house: shared types that import nothing else of ours.

``fitness`` (the record of one evaluation), ``evaluator`` (Task, Outcome, Evaluator),
``tracker`` (the life-cycle hooks of a search), ``front`` (Pareto front, front JSON,
FrontStore), ``key`` (evaluation keys and the code version), ``io`` (atomic writes),
``urls`` (service URLs), ``table`` (plain-text tables), ``errors`` and ``version``.
Every other package depends on this one; ``tests/test_layering.py`` keeps it a leaf.
"""
