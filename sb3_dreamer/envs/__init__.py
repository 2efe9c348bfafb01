"""The paper's environment protocols as gymnasium ids (registered by ``import sb3_dreamer``):

- ``sb3_dreamer/<Game>-v0``: Atari, see :mod:`sb3_dreamer.envs.atari` (needs the ``atari`` extra to make).
- ``sb3_dreamer/DMC-<domain>-<task>-v0``: DeepMind Control from 64x64 pixels, see :mod:`sb3_dreamer.envs.dmc`
  (needs the ``dmc`` extra and ``MUJOCO_GL``); ``sb3_dreamer/DMCProprio-<domain>-<task>-v0`` from state.
- ``sb3_dreamer/Crafter-v0``: Crafter, see :mod:`sb3_dreamer.envs.crafter` (needs the ``crafter`` extra).

Registration imports neither ale-py, dm_control nor crafter; they load on ``gym.make``. Custom envs:
:mod:`sb3_dreamer.envs.wrappers` (``ResizeImage``, ``PlainDict``).
"""

from sb3_dreamer.envs.atari import env_id, make_atari, register_atari_envs
from sb3_dreamer.envs.crafter import register_crafter_env
from sb3_dreamer.envs.dmc import make_dmc, make_dmc_proprio, register_dmc_envs
from sb3_dreamer.envs.wrappers import PlainDict, ResizeImage


def register_envs() -> None:
    """Register every id above (idempotent)."""
    register_atari_envs()
    register_dmc_envs()
    register_crafter_env()


__all__ = ["PlainDict", "ResizeImage", "env_id", "make_atari", "make_dmc", "make_dmc_proprio", "register_envs"]
