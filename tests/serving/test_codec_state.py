"""Pure pieces of the serving loop: request bodies, encodings, routing, served-sample storage."""

import io

import numpy as np
import pytest

from evodiff_ray.serving.codec import JSON, NPZ, PNG, BadRequest, choose_format, npz_bytes, parse_generate, png_grid
from evodiff_ray.serving.feedback import Preference, Rating, parse_feedback
from evodiff_ray.serving.quality import decode_samples, encode_samples
from evodiff_ray.serving.state import RoutingState, pick, routes


@pytest.mark.parametrize("body, words", [
    (b'{"n": 65}', "out of range"), (b'{"n": 0}', "out of range"), (b'{"n": 2.5}', "integer"),
    (b'{"seed": "7"}', "integer"), (b'{"seed": -1}', "out of range"), (b'{"n": null}', "integer"),
    (b'{"x": 1}', "unknown field"), (b"[]", "JSON object"), (b"{", "not valid JSON"), (b'{"n": false}', "integer"),
])
def test_bad_generate_bodies_are_one_line_400s(body, words):
    with pytest.raises(BadRequest) as e:
        parse_generate(body, max_n=64)
    assert e.value.status == 400 and words in str(e.value) and "\n" not in str(e.value)


def test_generate_defaults_and_integral_floats():
    assert parse_generate(b'{"n": 4, "seed": 7}') == parse_generate(b'{"n": 4.0, "seed": 7}')
    req = parse_generate(b"", rng=np.random.default_rng(0))
    assert req.n == 16 and 0 <= req.seed < 2**31


def test_accept_picks_the_encoding():
    assert choose_format(None) == PNG and choose_format("*/*") == PNG
    assert choose_format("application/x-npz") == NPZ and choose_format("application/json, */*") == JSON
    with pytest.raises(BadRequest) as e:
        choose_format("text/html")
    assert e.value.status == 406


def test_encodings_round_trip():
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 8, 8)).astype(np.float32)
    npz = np.load(io.BytesIO(npz_bytes(x, version="3")), allow_pickle=False)
    assert np.array_equal(npz["images"], x) and str(npz["version"]) == "3"
    from PIL import Image

    img = Image.open(io.BytesIO(png_grid(x, scale=1)))
    assert img.size == (3 * 9 + 1, 2 * 9 + 1)          # 5 images: a 3 x 2 grid with 1-pixel gaps
    back = decode_samples(encode_samples(x))
    assert back.shape == x.shape and np.allclose(back, x, atol=1e-3)
    with pytest.raises(ValueError):
        decode_samples(b"5,1,8,8;" + b"\0" * 10)


def test_feedback_bodies():
    assert parse_feedback(b'{"request_id": "abc-1", "rating": 5}') == Rating("abc-1", 5)
    assert parse_feedback(b'{"preferred": "a", "other": "b"}') == Preference("a", "b")
    for body, words in [(b'{"request_id": "a", "rating": 6}', "out of range"),
                        (b'{"request_id": "a b", "rating": 3}', "request id"),
                        (b'{"preferred": "a", "other": "a"}', "same request"),
                        (b'{"request_id": "a", "rating": 3, "x": 1}', "unknown field")]:
        with pytest.raises(BadRequest, match=words):
            parse_feedback(body)


def test_routes_follow_readiness_and_share():
    s = RoutingState("m", "d1", "1", challenger="2", share=10, ready=("1",))
    assert routes(s) == [("1", 100.0)]                  # the challenger takes traffic only once up
    s = s.with_ready("2")
    assert routes(s) == [("1", 90.0), ("2", 10.0)]
    assert pick(s, 0.89) == "1" and pick(s, 0.91) == "2"
    draws = np.random.default_rng(0).random(20_000)
    assert abs(np.mean([pick(s, u) == "2" for u in draws]) - 0.10) < 0.01
    # a new production that is not up yet: the former one (fallback) serves meanwhile
    s = RoutingState("m", "d2", "3", ready=("1", "2"), fallback="1")
    assert routes(s) == [("1", 100.0)] and s.live() == {"3", "1"}
    s = s.with_ready("3")
    assert routes(s) == [("3", 100.0)] and s.live() == {"3"} and s.fallback is None
    assert RoutingState.from_json(s.to_json()) == s
    assert routes(RoutingState("m", "d", "1")) == [] and pick(RoutingState("m", "d", "1"), 0.5) is None


def test_an_inline_gateway_routes_no_traffic_to_a_challenger_it_is_still_loading():
    """Served by its replica meanwhile, the challenger would look slower than it is to the
    policy's latency test; once loaded (or if its load failed) it takes its share."""
    from evodiff_ray.serving.app import inline_routing

    s = RoutingState("m", "d1", "1", challenger="2", share=30, ready=("1", "2"))
    assert routes(inline_routing(s, held={"1"}, loading={"2"})) == [("1", 100.0)]
    assert routes(inline_routing(s, held={"1", "2"}, loading=set())) == [("1", 70.0), ("2", 30.0)]
    assert routes(inline_routing(s, held={"1"}, loading=set())) == [("1", 70.0), ("2", 30.0)]   # load failed
    # production not held either: both go to their replicas, as the state says
    assert routes(inline_routing(s, held=set(), loading={"1", "2"})) == [("1", 70.0), ("2", 30.0)]
    # a new production not up yet: the fallback serves, and it is what the gateway must hold
    f = RoutingState("m", "d2", "3", challenger="2", share=30, ready=("1", "2"), fallback="1")
    assert routes(inline_routing(f, held={"1"}, loading={"2"})) == [("1", 100.0)]
    assert inline_routing(s, held={"1"}, loading={"2"}).ready == ("1",) and s.ready == ("1", "2")
