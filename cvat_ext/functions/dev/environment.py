"""Each served function's own environment: its function.yaml ``spec.env``, then overrides.

Nuclio gives every function container the ``spec.env`` of its yaml (plus what ``nuctl deploy
--env`` adds). ``cvat-ext functions serve`` runs several functions in one process, so it applies a
function's environment while that function's workers run ``init_context`` (where our functions
read their settings: checkpoint, device, cache size), one function at a time under one lock, and
restores the process environment after. Precedence, lowest first:

1. the process environment (``PATH``, ``CVAT_FUNCTIONS_REDIS_HOST`` ... as for every function);
2. ``CVAT_EXT_FUNCTION_YAML`` = the function's own yaml (where its handler reads its labels);
3. the yaml's ``spec.env`` (``{name, value}`` items; ``valueFrom`` needs Kubernetes: an error);
4. overrides ``NAME=VALUE`` (every function), then ``FUNCTION:NAME=VALUE`` (that function only).

A function that reads ``os.environ`` at call time (not at init) would see the process environment:
ours do not, and the docs say so.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cvat_ext.errors import ConfigError
from cvat_ext.functions.spec import FUNCTION_YAML_ENV, FunctionYaml

__all__ = ["EnvOverrides", "function_environment", "scoped_environ"]

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")
#: one lock for the whole process: os.environ is process-wide
_ENVIRON_LOCK = threading.RLock()


@dataclass(frozen=True)
class EnvOverrides:
    """Command-line / environment overrides: ``common`` for every function, ``by_function[name]``."""

    common: Mapping[str, str] = field(default_factory=dict)
    by_function: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: Iterable[str]) -> EnvOverrides:
        """Parse ``NAME=VALUE`` / ``FUNCTION:NAME=VALUE`` items; a malformed one is a ConfigError naming it."""
        common: dict[str, str] = {}
        by_function: dict[str, dict[str, str]] = {}
        for item in items:
            key, sep, value = item.partition("=")
            function, colon, name = key.rpartition(":")
            if not sep or not _ENV_NAME_RE.match(name) or (colon and not _FUNCTION_NAME_RE.match(function)):
                raise ConfigError(f"--env {item!r}: expected NAME=VALUE or FUNCTION:NAME=VALUE")
            (by_function.setdefault(function, {}) if colon else common)[name] = value
        return cls(common, by_function)

    def unknown_functions(self, names: Iterable[str]) -> list[str]:
        """Function names the overrides mention that are not in ``names`` (a typo would be silent)."""
        known = set(names)
        return sorted(set(self.by_function) - known)


def function_environment(config: FunctionYaml, yaml_path: Path, overrides: EnvOverrides) -> dict[str, str]:
    """The variables to set for one function (on top of the process environment), see the module doc."""
    env = {FUNCTION_YAML_ENV: str(yaml_path)}
    env.update(config.env_values(where=str(yaml_path)))
    env.update(overrides.common)
    env.update(overrides.by_function.get(config.metadata.name, {}))
    return env


@contextmanager
def scoped_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Run a block with ``env`` set in ``os.environ``; the previous values come back after.

    Serialised by one process-wide lock: two functions initialising at once would otherwise see
    each other's checkpoint paths.
    """
    with _ENVIRON_LOCK:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old
