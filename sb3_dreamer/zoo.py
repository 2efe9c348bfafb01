"""DreamerV2 in rl-zoo3.

After ``pip install sb3_dreamer[zoo]`` the plain commands work::

    rl_zoo3 train --algo dreamerv2 --env sb3_dreamer/Pong-v0
    rl_zoo3 enjoy --algo dreamerv2 --env sb3_dreamer/Pong-v0 -f logs/
    python -m rl_zoo3.record_video --algo dreamerv2 --env sb3_dreamer/Pong-v0 -f logs/ -n 1000

because a small import hook (``_sb3_dreamer_zoo_hook``, run by the installed ``sb3_dreamer_zoo.pth``) calls
:func:`register_algo` and :func:`use_default_config` as rl-zoo3's modules load. Set ``SB3_DREAMER_ZOO_HOOK=0`` to
turn the hook off; the explicit entry point works either way and takes rl-zoo3's script names::

    python -m sb3_dreamer.zoo train --algo dreamerv2 --env CartPole-v1
    python -m sb3_dreamer.zoo enjoy|record_video|plot_train|all_plots|plot_from_file|push_to_hub|load_from_hub ...

The default hyperparameter file is :data:`DEFAULT_CONFIG` (``atari`` for every ``sb3_dreamer/<Game>-v0`` id,
the classic-control tasks, the DMC presets); ``-conf`` overrides it.
"""

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).parent / "hyperparams" / "dreamerv2.yml"
ALGO_NAME = "dreamerv2"

# rl-zoo3's scripts (module run as __main__, the way ``python -m`` runs them).
_SCRIPTS = {
    "train": "rl_zoo3.train",
    "enjoy": "rl_zoo3.enjoy",
    "record_video": "rl_zoo3.record_video",
    "plot_train": "rl_zoo3.plots.plot_train",
    "all_plots": "rl_zoo3.plots.all_plots",
    "plot_from_file": "rl_zoo3.plots.plot_from_file",
    "push_to_hub": "rl_zoo3.push_to_hub",
    "load_from_hub": "rl_zoo3.load_from_hub",
}


# The optional modules the command-line tools import: (pip package, extra of sb3_dreamer that installs it).
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "yaml": ("pyyaml", "zoo"),
    "rl_zoo3": ("rl_zoo3", "zoo"),
    "huggingface_sb3": ("huggingface-sb3", "zoo"),
    "huggingface_hub": ("huggingface-hub", "zoo"),
    "requests": ("requests", "zoo"),
    "moviepy": ("moviepy", "zoo"),
    "imageio": ("imageio", "zoo"),
    "ale_py": ("ale-py", "atari"),
    "cv2": ("opencv-python-headless", "atari"),
    "ray": ("ray", "cluster"),
    "dm_control": ("dm-control", "dmc"),
    "mujoco": ("mujoco", "dmc"),
    "shimmy": ("shimmy", "dmc"),
    "crafter": ("crafter", "crafter"),
    "minigrid": ("minigrid", "minigrid"),
}


def missing_extra_message(tool: str, error: ImportError) -> str | None:
    """One line naming the extra that installs the module ``error`` misses (``None`` if it is no optional one)."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    if name not in OPTIONAL_MODULES:
        return None
    package, extra = OPTIONAL_MODULES[name]
    return f'sb3_dreamer.{tool} needs {package}: pip install "sb3_dreamer[{extra}]"'


@contextlib.contextmanager
def extras_needed(tool: str) -> Iterator[None]:
    """Turn a missing optional module inside the block into a one-line exit (status 1) naming its extra."""
    try:
        yield
    except ImportError as error:
        message = missing_extra_message(tool, error)
        if message is None:
            raise
        raise SystemExit(message) from None


CONTINUE_ALL_ENV = "SB3_DREAMER_CONTINUE_ALL_ALGOS"  # "1": -i continues the counters of every algorithm


def register_algo() -> None:
    """Add ``dreamerv2`` to ``rl_zoo3.ALGOS`` (idempotent)."""
    from rl_zoo3.utils import ALGOS

    from sb3_dreamer import DreamerV2

    ALGOS.setdefault(ALGO_NAME, DreamerV2)


def use_default_config() -> None:
    """Make :data:`DEFAULT_CONFIG` rl-zoo3's default ``-conf`` for ``dreamerv2`` (idempotent).

    rl-zoo3 looks for ``hyperparams/<algo>.yml`` inside its own package; this swaps
    ``rl_zoo3.exp_manager.ExperimentManager`` for a subclass that changes that default, and makes ``-i`` (a
    trained agent) continue the counters of a ``dreamerv2`` run instead of restarting them, before the scripts
    import the name.
    """
    from rl_zoo3 import exp_manager

    if getattr(exp_manager.ExperimentManager, "_sb3_dreamer", False):
        return

    class ExperimentManager(exp_manager.ExperimentManager):
        _sb3_dreamer = True

        def __init__(self, args: Any, algo: str, *rest: Any, config: str | None = None, **kwargs: Any):
            if algo == ALGO_NAME and config is None:
                config = str(DEFAULT_CONFIG)
            super().__init__(args, algo, *rest, config=config, **kwargs)  # type: ignore[misc]

        def learn(self, model: Any) -> None:
            # `-i <model.zip>` (with its replay_buffer.pkl, see --save-replay-buffer) resumes a dreamerv2 run:
            # step and update counters, the frame count and the TensorBoard run continue; -n counts new steps.
            every_algo = os.environ.get(CONTINUE_ALL_ENV) == "1"  # set by the Atari benchmark runner
            if not ((self.algo == ALGO_NAME or every_algo) and self.trained_agent):
                return super().learn(model)
            # rl-zoo3's learn(), with reset_num_timesteps=False (nothing patched onto the model, which callbacks
            # may save mid-run).
            kwargs: dict[str, Any] = {"reset_num_timesteps": False}
            if self.log_interval > -1:
                kwargs["log_interval"] = self.log_interval
            elif self.log_interval < -1:
                kwargs["log_interval"] = None
            if self.callbacks:
                kwargs["callback"] = self.callbacks
            try:
                model.learn(self.n_timesteps, **kwargs)
            except KeyboardInterrupt:  # as rl-zoo3: the model is saved after an interruption
                pass
            finally:
                if self.callbacks:
                    self.callbacks[0].on_training_end()
                with contextlib.suppress(EOFError):
                    model.env.close()

    ExperimentManager.__qualname__ = exp_manager.ExperimentManager.__qualname__
    ExperimentManager.__module__ = exp_manager.__name__
    exp_manager.ExperimentManager = ExperimentManager  # type: ignore[misc]


def register() -> None:
    """Both registrations; call before importing rl-zoo3's scripts (``rl_zoo3.train`` ...)."""
    try:
        import rl_zoo3  # noqa: F401
    except ImportError as error:
        raise ModuleNotFoundError(
            "rl-zoo3 integration needs the zoo extra: pip install 'sb3_dreamer[zoo]'", name="rl_zoo3"
        ) from error
    register_algo()
    use_default_config()


USAGE = f"usage: python -m sb3_dreamer.zoo {{{','.join(_SCRIPTS)}}} [rl-zoo3 arguments]"
HELP = f"""{USAGE}

rl-zoo3's scripts with DreamerV2 registered as the algorithm 'dreamerv2' and
sb3_dreamer/hyperparams/dreamerv2.yml as its default hyperparameter file (-conf overrides it).
Needs the zoo extra: pip install "sb3_dreamer[zoo]".

scripts (rl-zoo3's module each runs):
{chr(10).join(f"  {name:<15} {module}" for name, module in _SCRIPTS.items())}

examples:
  python -m sb3_dreamer.zoo train --algo dreamerv2 --env CartPole-v1
  python -m sb3_dreamer.zoo enjoy --algo dreamerv2 --env CartPole-v1 -f logs/
  python -m sb3_dreamer.zoo train --help      # rl-zoo3's own options
"""


def main(argv: list[str] | None = None) -> None:
    """``python -m sb3_dreamer.zoo <script> [rl-zoo3 arguments]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(HELP, end="")
        return
    if not argv or argv[0] not in _SCRIPTS:
        raise SystemExit(USAGE)
    with extras_needed("zoo"):
        register()
    sys.argv = [f"rl_zoo3 {argv[0]}", *argv[1:]]
    runpy.run_module(_SCRIPTS[argv[0]], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
