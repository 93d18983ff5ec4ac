"""Closing the loop after a search: lineage you can query, and (below the search layer,
where the search driver can reach them) warm starts (:mod:`evodiff_ray.search.seeds`) and
automatic registration (:mod:`evodiff_ray.tracking.registration`)."""
