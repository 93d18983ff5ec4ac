"""The Redis fitness cache: claim protocol, resilient connection, lease renewer, embedded server, front store."""

from evodiff_ray.cache.cached_evaluator import CachedEvaluator
from evodiff_ray.cache.claims import ClaimBook
from evodiff_ray.cache.connection import ResilientConnection
from evodiff_ray.cache.front_store import RedisFrontStore
from evodiff_ray.cache.local_redis import LocalRedis
from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.cache.renewer import LeaseRenewer

__all__ = ["CachedEvaluator", "ClaimBook", "FitnessCache", "LeaseRenewer", "LocalRedis", "RedisFrontStore",
           "ResilientConnection"]
