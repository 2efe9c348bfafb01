"""Make ``rl_zoo3 train --algo dreamerv2`` work after ``pip install sb3_dreamer[zoo]``.

rl-zoo3 has no plug-in registry: ``--algo`` is checked against the dict ``rl_zoo3.ALGOS`` when the command
line is parsed, and the default hyperparameter file is looked up inside rl-zoo3's own package. The
``sb3_dreamer_zoo.pth`` file that pip installs next to the packages runs :func:`install` at interpreter start.
It only adds an import hook (standard library only, nothing else is imported): the first time a program
imports ``rl_zoo3.utils`` it adds ``dreamerv2`` to ``ALGOS`` (:func:`sb3_dreamer.zoo.register_algo`), and
right after ``rl_zoo3.exp_manager`` it makes ``sb3_dreamer/hyperparams/dreamerv2.yml`` the default config
for ``dreamerv2`` (:func:`sb3_dreamer.zoo.use_default_config`; an explicit ``-conf`` still wins). Programs
that never import rl-zoo3 are not affected.

Turn it off with the environment variable ``SB3_DREAMER_ZOO_HOOK=0``; ``python -m sb3_dreamer.zoo train ...``
works either way.
"""

import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType

_TARGETS = ("rl_zoo3.utils", "rl_zoo3.exp_manager")


class _RegisterAfter(importlib.abc.Loader):
    """Run the real loader, then register DreamerV2 with rl-zoo3."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        from sb3_dreamer import zoo

        if module.__name__ == "rl_zoo3.utils":
            zoo.register_algo()
        else:
            zoo.use_default_config()


class _ZooFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001, ANN201
        if fullname not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegisterAfter(spec.loader)
        return spec


def install() -> None:
    """Add the import hook once (a no-op when ``SB3_DREAMER_ZOO_HOOK=0``)."""
    if os.environ.get("SB3_DREAMER_ZOO_HOOK", "1") == "0":
        return
    if not any(isinstance(finder, _ZooFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ZooFinder())
