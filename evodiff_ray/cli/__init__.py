"""The ``evodiff-ray`` command line: parse, build a config, call one function.

Each subcommand is a small class in its own module, registered in ``COMMANDS``. Modules
are imported lazily so that ``evodiff-ray --help`` stays fast (mlflow and ray are slow
to import).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from evodiff_ray.core.errors import RuntimeFailure, UsageError

#: subcommand name -> (module, class, one-line help). Explicit, never discovered.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "search": ("evodiff_ray.cli.search", "SearchCommand", "run or resume an evolutionary search"),
    "front": ("evodiff_ray.cli.front", "FrontCommand", "show the live or final Pareto front of a search"),
    "genome": ("evodiff_ray.cli.genome", "GenomeCommand", "sample, validate or describe architecture genomes"),
    "evaluate": ("evodiff_ray.cli.evaluate", "EvaluateCommand", "train, sample and measure one genome locally"),
    "baseline": ("evodiff_ray.cli.baseline", "BaselineCommand", "print (or --evaluate) the reference UNet genome"),
    "searches": ("evodiff_ray.cli.searches", "SearchesCommand", "list known searches (Redis and run dirs)"),
    "promote": ("evodiff_ray.cli.promote", "PromoteCommand", "train a front member at full fidelity and register it"),
    "compare": ("evodiff_ray.cli.compare", "CompareCommand", "compare searches: hypervolume, front size, bests"),
    "show": ("evodiff_ray.cli.show", "ShowCommand", "print the path of a search's front sheet or a candidate's samples"),
    "ui": ("evodiff_ray.cli.ui", "UiCommand", "start the MLflow UI on the project's store and print a search's link"),
    "hardware": ("evodiff_ray.cli.hardware", "HardwareCommand", "list Apple Silicon chip profiles and detect this device"),
    "serve": ("evodiff_ray.cli.serve", "ServeCommand", "serve a registered model's production version on Ray Serve"),
    "deploy": ("evodiff_ray.cli.deploy", "DeployCommand", "canary a registered version beside production, or promote it"),
    "rollback": ("evodiff_ray.cli.rollback", "RollbackCommand", "end a canary, or return to the previous production"),
    "deployments": ("evodiff_ray.cli.deployments", "DeploymentsCommand", "list the deployment history of served models"),
    "lineage": ("evodiff_ray.cli.lineage", "LineageCommand", "print a candidate's ancestry and draw it as a graph"),
    "history": ("evodiff_ray.cli.history", "HistoryCommand", "best per objective and hypervolume across an experiment's searches over time"),
    "adapt": ("evodiff_ray.cli.adapt", "AdaptCommand", "on new data, degradation or a schedule: search again, canary the knee"),
}


class Command:
    """Base class of a subcommand: ``add_arguments`` then ``run``; returns the exit code."""

    help: str = ""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:  # pragma: no cover - interface
        pass

    def run(self, args: argparse.Namespace) -> int:  # pragma: no cover - interface
        raise NotImplementedError


def redis_url_arg(value: str | None, env: str | None = "EVODIFF_REDIS_URL") -> str | None:
    """A command's ``--redis-url``, else the environment variable ``env`` (when set), checked.

    Raises:
        UsageError: a malformed URL, naming the flag or the variable it came from.
    """
    from evodiff_ray.core.urls import check_redis_url

    if value is not None:
        return check_redis_url(value, "--redis-url")
    from_env = os.environ.get(env) if env else None
    return check_redis_url(from_env, env) if from_env else None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every usage error
        sys.stderr.write(f"evodiff-ray: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evodiff-ray",
        description="Ray-distributed multi-objective evolutionary architecture search "
        "for diffusion denoisers, hardware-aware for Apple Silicon.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, cls_name, help_text) in COMMANDS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        cls.add_arguments(p)
        p.set_defaults(_command=cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``evodiff-ray``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_command", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._command().run(args) or 0)
    except UsageError as e:
        sys.stderr.write(f"evodiff-ray: error: {e}\n")
        return 2
    except RuntimeFailure as e:
        sys.stderr.write(f"evodiff-ray: failed: {e}\n")
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("evodiff-ray: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
