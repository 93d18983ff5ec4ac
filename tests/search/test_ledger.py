"""The ledger alone: asks, tells and replay without any I/O; the edge's declared hooks."""

import ast
import inspect

from evodiff_ray.config import load_config
from evodiff_ray.core.evaluator import Evaluator, Outcome
from evodiff_ray.core.tracker import Tracker
from evodiff_ray.problems import make_problem
from evodiff_ray.search import ledger as ledger_module
from evodiff_ray.search import search
from evodiff_ray.search.ledger import Ledger, ask_event, tell_event
from evodiff_ray.strategies import make_strategy


def new_ledger(problem, strategy="nsga2"):
    return Ledger(problem, make_strategy(strategy, problem, pop_size=6, n_offsprings=4, seed=5))


def drive(ledger, problem, tells, split=False):
    """Ask and tell ``tells`` times (with ``split``, each ask is told in two parts); returns the events."""
    events = []
    for _ in range(tells):
        tasks = ledger.ask()
        events.append(ask_event(tasks))
        parts = [tasks[:1], tasks[1:]] if split else [tasks]
        for part in parts:
            outcomes = [Outcome(t, problem.evaluate(problem.from_json(t.x))) for t in part]
            events.append(tell_event(*ledger.tell(outcomes, in_flight=0)))
    return events


def test_replayed_events_rebuild_the_same_state():
    for strategy in ("nsga2", "random", "optuna"):
        p = make_problem("zdt1", {"n_var": 5})
        live = new_ledger(p, strategy)
        events = drive(live, p, 4, split=True)
        replayed = new_ledger(p, strategy)
        replayed.replay(events)
        assert replayed.records == live.records and replayed.history == live.history
        assert replayed.front_records == live.front_records and replayed.reference_point == live.reference_point
        assert [t.key for t in replayed.ask()] == [t.key for t in live.ask()], strategy


def test_the_ledger_module_does_no_io():
    tree = ast.parse(inspect.getsource(ledger_module))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"os", "json", "time", "pathlib", "evodiff_ray.core.io", "evodiff_ray.core.tracker",
                           "evodiff_ray.search.checkpoint"}
    assert "open(" not in inspect.getsource(ledger_module)


def test_plateau_counts_generations_or_evaluations():
    p = make_problem("zdt1", {"n_var": 5})
    led = new_ledger(p)
    led.history = [{"hypervolume": hv, "evaluations": 10 * (i + 1)} for i, hv in enumerate([0, 0, 0, 1, 2, 2, 2])]
    led.records = [None] * 70
    assert led.plateaued(2) and not led.plateaued(3)
    assert led.plateaued(1, per_generation=20) and not led.plateaued(1, per_generation=30)
    led.history = [{"hypervolume": 0.0, "evaluations": 10 * (i + 1)} for i in range(7)]
    assert not led.plateaued(2)   # nothing inside the reference box yet: no plateau


def test_declared_hooks_are_no_ops():
    class Bare(Evaluator):
        capacity = 1
        in_flight = 0

        def submit(self, tasks):
            pass

        def poll(self, timeout=None):
            return []

    t = Tracker()
    assert t.note("x") is None and t.on_records([]) is None
    assert Bare().metrics_tracker() is None and Bare().release() is None


def test_trackers_see_live_records_not_replayed_ones(runs_dir):
    class Seen(Tracker):
        def __init__(self):
            self.ordinals = []

        def on_records(self, records):
            self.ordinals += [r["ordinal"] for r in records]

    def cfg(generations):
        return load_config(overrides={"problem": "zdt1", "pop_size": 6, "generations": generations, "seed": 2,
                                      "backend": "local", "runs_dir": str(runs_dir), "search_id": "t",
                                      "no_cache": True, "no_tracking": True})

    first, second = Seen(), Seen()
    search(cfg(2), trackers=[first])
    search(cfg(4), resume=True, trackers=[second])
    assert first.ordinals == list(range(12)) and second.ordinals == list(range(12, 24))
