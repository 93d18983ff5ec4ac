"""step_progress: long trainings (``evaluate``, ``promote`` at full fidelity) say they are alive."""

import pytest

from evodiff_ray.diffusion.train import step_progress


def test_reports_at_most_every_interval_with_eta_and_chains_the_check():
    now = [100.0]
    lines, checked = [], []
    on_step = step_progress(lines.append, 1000, "training abc", every_s=10.0, then=checked.append,
                            clock=lambda: now[0])
    for step in range(1000):
        on_step(step)
        now[0] += 0.125                        # 0.125 s a step: 125 s in all
    assert checked == list(range(1000))        # the time limit's check still sees every step
    assert len(lines) == 12                    # one per 10 s
    assert lines[0] == "training abc: step 80/1000 (8%), 10 s elapsed, ETA 115 s"


def test_a_check_that_raises_aborts_before_reporting():
    def limit(step):
        raise TimeoutError("over the time limit")

    lines = []
    with pytest.raises(TimeoutError):
        step_progress(lines.append, 10, "x", every_s=0.0, then=limit)(5)
    assert lines == []
