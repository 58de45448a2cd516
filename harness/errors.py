"""Exceptions the CLI turns into one line and an exit code."""


class HarnessError(Exception):
    """A failure at run time (exit code 1). The message says what to do next."""

    exit_code = 1


class UsageError(HarnessError):
    """A bad name, budget, flag or argument (exit code 2)."""

    exit_code = 2
