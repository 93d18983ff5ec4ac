"""The Redis fitness cache, its embedded server, and the Redis front store."""

from evodiff_ray.cache.cached_evaluator import CachedEvaluator
from evodiff_ray.cache.front_store import RedisFrontStore
from evodiff_ray.cache.local_redis import LocalRedis
from evodiff_ray.cache.redis_cache import FitnessCache

__all__ = ["CachedEvaluator", "FitnessCache", "LocalRedis", "RedisFrontStore"]
