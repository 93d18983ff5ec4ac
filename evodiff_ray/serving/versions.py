"""Registry look-ups for serving: which version the ``production`` alias names, and whether one exists."""

from __future__ import annotations

from evodiff_ray.core.errors import UsageError

PRODUCTION = "production"


def registry_client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def check_version(client, model: str, version: str | int) -> str:
    """``version`` as a string when ``model`` has it.

    Raises:
        UsageError: no such model or version, naming the versions there are.
    """
    from mlflow.exceptions import MlflowException

    version = str(version).strip()
    if not version.isdigit():
        raise UsageError(f"--version {version!r}: a registry version is a positive integer")
    try:
        client.get_model_version(model, version)
        return version
    except MlflowException:
        pass
    try:
        known = sorted((int(v.version) for v in client.search_model_versions(f"name='{model}'")))
    except MlflowException:
        known = []
    if not known:
        raise UsageError(f"no registered model {model!r}; register one with 'evodiff-ray promote SEARCH_ID "
                         f"--model-name {model}'")
    raise UsageError(f"model {model!r} has no version {version} (it has {', '.join(map(str, known))}); "
                     "pick one of those")


def production_version(client, model: str) -> str:
    """The version the ``production`` alias points at.

    Raises:
        UsageError: no alias, with the two ways to set one.
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, PRODUCTION).version)
    except MlflowException:
        pass
    try:
        client.get_registered_model(model)
    except MlflowException:
        raise UsageError(f"no registered model {model!r}; register one with 'evodiff-ray promote SEARCH_ID "
                         f"--model-name {model}'") from None
    raise UsageError(f"model {model!r} has no '{PRODUCTION}' alias; set one with 'evodiff-ray deploy {model} "
                     f"--version V --promote' or 'evodiff-ray promote SEARCH_ID --model-name {model} "
                     f"--alias {PRODUCTION}'")


def model_uri(model: str, version: str) -> str:
    return f"models:/{model}/{version}"
