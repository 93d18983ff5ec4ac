"""User-facing error types: the CLI turns them into one line and an exit code."""


class UsageError(Exception):
    """A user's mistake (bad flag, config, genome or dataset). CLI exit code 2.

    The message is one line that names the problem and the fix.
    """


class RuntimeFailure(Exception):
    """A failure that is not the user's input (a crashed service, a lost cluster). Exit 1."""
