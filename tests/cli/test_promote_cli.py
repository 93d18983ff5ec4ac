"""``evodiff-ray promote --pick``: the argument's error paths (a real promotion trains; see tracking tests)."""

import pytest

from evodiff_ray.cli import main


def test_malformed_weights_fail_before_anything_is_read(tmp_path, capsys):
    code = main(["promote", "no-such-search", "--runs-dir", str(tmp_path), "--pick", "weights:quality_fd=-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("evodiff-ray: error: --pick weights:quality_fd=-1: weights must be finite "
                                 "and >= 0; quality_fd=-1")


@pytest.fixture
def zdt1_search(runs_dir, capsys):
    assert main(["search", "--problem", "zdt1", "--pop", "8", "--generations", "2", "--backend", "local",
                 "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--quiet", "--search-id", "z"]) == 0
    capsys.readouterr()
    return runs_dir


@pytest.mark.parametrize("pick, message", [
    ("weights:f3=1", "--pick weights:f3=1: the front has no objective 'f3'; weigh some of f1, f2"),
    ("weights:f1=0,f2=0", "every weight is 0"),
    # a good pick goes on to training, which a vector problem has none of
    ("weights:f1=2,f2=1", "search 'z' is a 'zdt1' search, whose candidates are not models"),
])
def test_weights_are_checked_against_the_front(zdt1_search, capsys, pick, message):
    assert main(["promote", "z", "--runs-dir", str(zdt1_search), "--pick", pick]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_help_documents_the_weighted_pick(capsys):
    with pytest.raises(SystemExit):
        main(["promote", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "weights:quality_fd=2,latency_ms=1" in out and "objectives not named weigh 0" in out
