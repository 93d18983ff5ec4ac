"""``evodiff-ray baseline``: print (and optionally evaluate) the shipped reference UNet genome."""

from __future__ import annotations

import argparse

from evodiff_ray.cli import Command
from evodiff_ray.cli.evaluate import add_evaluation_arguments, evaluate_and_print


class BaselineCommand(Command):
    """Print the hand-designed reference genome; ``--evaluate`` measures it like ``evaluate``."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--evaluate", action="store_true", help="evaluate it and print the Fitness instead")
        add_evaluation_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.problems.diffusion import baseline_genome

        genome = baseline_genome()
        if args.evaluate:
            return evaluate_and_print(genome, args)
        print(genome.to_json(indent=2))
        return 0
