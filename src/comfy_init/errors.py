"""One exception hierarchy; each class carries the exit code ``main()`` turns it into.

Messages follow ``<what failed>: <why> (<what to do>)`` and name the bad value and where it
came from (environment variable, ``file:line``).  Only ``cli.main`` catches these.
"""

from __future__ import annotations

# Exit codes, documented in the README ("Exit codes").  128+N (death by signal N) is
# computed where a signal ends the run.
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: unexpected exception (traceback printed)
EXIT_USAGE = 2  # bad command-line flags (argparse uses 2 as well)
EXIT_CONFIG = 3  # bad environment variable, bad warmup config line, bad template
EXIT_ENVIRONMENT = 4  # something we need is missing: ComfyUI, a writable cache, supervisord
EXIT_WARMUP_INCOMPLETE = 5  # `comfy-init warmup`: some files failed or did not fit
EXIT_SUPERVISOR = 6  # supervisord failed to start or died on its own


def signal_exit_code(signum: int) -> int:
    """The conventional exit status of a process that stopped because of signal ``signum``."""
    return 128 + signum


class ComfyInitError(Exception):
    """Base of every expected failure.  ``str(err)`` is the whole user-facing message."""

    exit_code = EXIT_INTERNAL


class UsageError(ComfyInitError):
    exit_code = EXIT_USAGE


class ConfigError(ComfyInitError):
    """Bad input: an environment variable, a config file line, a template."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} configuration problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class EnvironmentMissing(ComfyInitError):
    """Something outside our control is absent or unusable (ComfyUI, cache dir, binaries)."""

    exit_code = EXIT_ENVIRONMENT
