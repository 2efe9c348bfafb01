"""Atari the way the DreamerV2 paper runs it (Hafner et al. 2021, appendix; danijar/dreamerv2 ``atari`` config).

======================  ====================================================================
ALE                     v5 ROMs (bundled with ale-py), ``frameskip=1`` at the emulator
sticky actions          p = 0.25, applied by the emulator on every frame
action repeat           4, max-pool over the last two frames
no-op starts            up to 30 (uniform 1..30, as gymnasium's ``AtariPreprocessing``)
observation             64x64 grayscale, shape (64, 64, 1), uint8, INTER_AREA resize
life loss               not a terminal, in training or evaluation; no FIRE reset
frame stacking          none (the RSSM is the memory)
episode cap             27,000 agent steps = 108,000 frames (truncation, not termination)
action space            full 18 actions (``full_action_space=False`` gives the minimal set)
rewards                 raw game score here; DreamerV2 squashes them with tanh inside the model only
======================  ====================================================================

``import sb3_dreamer`` registers one id per ALE game, ``sb3_dreamer/<Game>-v0`` (``sb3_dreamer/Pong-v0``), so
rl-zoo3 and ``gym.make`` get the protocol from the id alone. The paper's task names (``atari_james_bond``) map
to ALE names with :func:`ale_name`; :data:`PAPER_GAMES` lists the 55 games of the paper's benchmark.
"""

from typing import Any

import gymnasium as gym
import numpy as np

NAMESPACE = "sb3_dreamer"
FRAMES_PER_STEP = 4
MAX_EPISODE_STEPS = 27_000  # agent steps: 108,000 frames

# The 55 games of the paper's Table 1 / Figure (names as in the published score files).
PAPER_GAMES: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "asteroids", "atlantis", "bank_heist", "battle_zone", "beam_rider",
    "berzerk", "bowling", "boxing", "breakout", "centipede", "chopper_command", "crazy_climber", "demon_attack",
    "double_dunk", "enduro", "fishing_derby", "freeway", "frostbite", "gopher", "gravitar", "hero", "ice_hockey",
    "james_bond", "kangaroo", "krull", "kung_fu_master", "montezuma_revenge", "ms_pacman", "name_this_game",
    "phoenix", "pitfall", "pong", "private_eye", "qbert", "riverraid", "road_runner", "robotank", "seaquest",
    "skiing", "solaris", "space_invaders", "star_gunner", "tennis", "time_pilot", "tutankham", "up_n_down",
    "venture", "video_pinball", "wizard_of_wor", "yars_revenge", "zaxxon",
)  # fmt: skip

# Every game ALE v5 ships (ale-py 0.12), registered under our namespace.
ALE_GAMES: tuple[str, ...] = (
    "Adventure", "AirRaid", "Alien", "Amidar", "Assault", "Asterix", "Asteroids", "Atlantis", "Atlantis2",
    "Backgammon", "BankHeist", "BasicMath", "BattleZone", "BeamRider", "Berzerk", "Blackjack", "Bowling", "Boxing",
    "Breakout", "Carnival", "Casino", "Centipede", "ChopperCommand", "CrazyClimber", "Crossbow", "Darkchambers",
    "Defender", "DemonAttack", "DonkeyKong", "DoubleDunk", "Earthworld", "ElevatorAction", "Enduro", "Entombed",
    "Et", "FishingDerby", "FlagCapture", "Freeway", "Frogger", "Frostbite", "Galaxian", "Gopher", "Gravitar",
    "Hangman", "HauntedHouse", "Hero", "HumanCannonball", "IceHockey", "Jamesbond", "JourneyEscape", "Kaboom",
    "Kangaroo", "KeystoneKapers", "KingKong", "Klax", "Koolaid", "Krull", "KungFuMaster", "LaserGates",
    "LostLuggage", "MarioBros", "MiniatureGolf", "MontezumaRevenge", "MrDo", "MsPacman", "NameThisGame", "Othello",
    "Pacman", "Phoenix", "Pitfall", "Pitfall2", "Pong", "Pooyan", "PrivateEye", "Qbert", "Riverraid", "RoadRunner",
    "Robotank", "Seaquest", "SirLancelot", "Skiing", "Solaris", "SpaceInvaders", "SpaceWar", "StarGunner",
    "Superman", "Surround", "Tennis", "Tetris", "TicTacToe3D", "TimePilot", "Trondead", "Turmoil", "Tutankham",
    "UpNDown", "Venture", "VideoCheckers", "VideoChess", "VideoCube", "VideoPinball", "WizardOfWor", "WordZapper",
    "YarsRevenge", "Zaxxon",
)  # fmt: skip

# Paper names whose ALE name is not the plain CamelCase of the words.
_ALE_EXCEPTIONS = {"james_bond": "Jamesbond"}


def ale_name(game: str) -> str:
    """ALE's name of a game given as the paper writes it: ``atari_james_bond`` or ``james_bond`` -> ``Jamesbond``,
    ``up_n_down`` -> ``UpNDown``. ALE names (``Pong``) pass through unchanged.
    """
    game = game.removeprefix("atari_")
    if game in _ALE_EXCEPTIONS:
        return _ALE_EXCEPTIONS[game]
    if "_" in game or game.islower():
        return "".join(word.capitalize() for word in game.split("_"))
    return game


def _unknown_game(game: str) -> ValueError:
    return ValueError(f"Unknown Atari game {game!r} (ALE name {ale_name(game)!r}); paper games: {', '.join(PAPER_GAMES)}")


def env_id(game: str) -> str:
    """Registered id of the paper's protocol for ``game`` (paper or ALE name): ``sb3_dreamer/Pong-v0``."""
    return f"{NAMESPACE}/{ale_name(game)}-v0"


class DreamerAtariEnv(gym.Wrapper):
    """One ALE game under the paper's protocol (see the module docstring); the registered ids build this.

    The class name contains ``AtariEnv`` on purpose: rl-zoo3 recognises Atari envs by that substring of the
    entry point, and then uses the ``atari`` entry of ``hyperparams/dreamerv2.yml`` for every game.

    :param game: ALE name (``Pong``) or paper name (``pong``, ``atari_james_bond``).
    :param repeat_action_probability: sticky actions, applied per emulator frame.
    :param full_action_space: all 18 actions (paper) or the game's minimal set.
    :param noop_max: at most this many no-op actions after each reset.
    :param action_repeat: emulator frames per agent step (max-pooled over the last two).
    :param size: side of the square observation.
    :param grayscale: (size, size, 1) grayscale, else (size, size, 3) RGB.
    :param render_mode: passed to ALE (``rgb_array`` for videos).
    """

    def __init__(
        self,
        game: str,
        repeat_action_probability: float = 0.25,
        full_action_space: bool = True,
        noop_max: int = 30,
        action_repeat: int = FRAMES_PER_STEP,
        size: int = 64,
        grayscale: bool = True,
        render_mode: str | None = None,
    ):
        try:
            import ale_py
        except ImportError as error:
            raise ImportError("Atari needs the atari extra: pip install 'sb3_dreamer[atari]'") from error
        gym.register_envs(ale_py)
        name = ale_name(game)
        if f"ALE/{name}-v5" not in gym.registry:
            raise _unknown_game(game)
        ale = gym.make(
            f"ALE/{name}-v5",
            frameskip=1,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            max_num_frames_per_episode=None,
            render_mode=render_mode,
        )
        env = gym.wrappers.AtariPreprocessing(
            ale,
            noop_max=noop_max,
            frame_skip=action_repeat,
            screen_size=size,
            terminal_on_life_loss=False,
            grayscale_obs=grayscale,
            grayscale_newaxis=True,
            scale_obs=False,
        )
        super().__init__(env)
        self.game = name
        self.action_repeat = action_repeat

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), terminated, truncated, info


def make_atari(game: str, max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any) -> gym.Env:
    """The paper's Atari env for ``game`` (see :class:`DreamerAtariEnv` for ``kwargs``), capped at
    ``max_episode_steps`` agent steps. Equivalent to ``gym.make(env_id(game), **kwargs)``.
    """
    if env_id(game) not in gym.registry:
        raise _unknown_game(game)
    return gym.make(env_id(game), max_episode_steps=max_episode_steps, **kwargs)


def register_atari_envs() -> None:
    """Register ``sb3_dreamer/<Game>-v0`` for every ALE v5 game (cheap: ale-py is imported only on ``make``)."""
    for name in ALE_GAMES:
        game_id = f"{NAMESPACE}/{name}-v0"
        if game_id not in gym.registry:
            gym.register(
                game_id,
                entry_point="sb3_dreamer.envs.atari:DreamerAtariEnv",
                kwargs={"game": name},
                max_episode_steps=MAX_EPISODE_STEPS,
            )
