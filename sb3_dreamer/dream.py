"""See what the model dreams: a saved DreamerV2 with image observations, shown as two animations.

``python -m sb3_dreamer.dream --help`` (:data:`DESCRIPTION`) says what it writes.
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.dreams import as_rgb, image_key, imagined_rollout, real_vs_imagined
from sb3_dreamer.zoo import extras_needed

DESCRIPTION = """\
See what the model dreams: a saved DreamerV2 with image observations, shown as two animations.

  real_vs_model.gif   columns real / model / error: the agent acts in the real env; the model sees the first
                      --context frames, then predicts the rest open-loop from the agent's actions alone
                      (error = (model - real + 1) / 2: mid-grey is a perfect prediction).
  dream.gif           an episode imagined from the first real observation, the actor choosing every action.

Each is also written as .mp4 when imageio can find ffmpeg (pip install imageio-ffmpeg). Env ids are
gymnasium ids, ours included (sb3_dreamer/<Game>-v0, sb3_dreamer/DMC-<domain>-<task>-v0, ...).
Needs imageio: pip install "sb3_dreamer[zoo]" (or pip install imageio).

examples:
  python -m sb3_dreamer.dream --model runs/pong.zip --env sb3_dreamer/Pong-v0 --out dreams/
  python -m sb3_dreamer.dream --model model.zip --env MyImageEnv-v0 --steps 500 --context 10 --safe
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (none for options without one), the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def write_animation(stem: Path, frames: th.Tensor, fps: float, scale: int = 1) -> list[Path]:
    """Write ``stem.gif`` and, when imageio finds ffmpeg, ``stem.mp4``.

    :param frames: (T, H, W, C) uint8. :param scale: integer upscaling (nearest neighbour) of every frame.
    :return: the files written.
    """
    try:
        import imageio.v2 as imageio
    except ImportError as error:
        raise ModuleNotFoundError("Writing GIFs needs imageio: pip install imageio imageio-ffmpeg", name="imageio") from error
    images = as_rgb(frames, -1).numpy().repeat(scale, 1).repeat(scale, 2)
    gif = stem.with_suffix(".gif")
    imageio.mimsave(gif, list(images), duration=1000 / fps, loop=0)
    written = [gif]
    mp4 = stem.with_suffix(".mp4")
    try:
        imageio.mimsave(mp4, list(images), fps=fps)
        written.append(mp4)
    except (ImportError, RuntimeError, ValueError, OSError) as error:
        print(f"No {mp4.name} ({error.__class__.__name__}: {error}); pip install imageio-ffmpeg for MP4s.")
    return written


def _load(path: Path, safe: bool) -> DreamerV2:
    return DreamerV2.load_safe(path) if safe else DreamerV2.load(path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m sb3_dreamer.dream", description=DESCRIPTION, formatter_class=_Formatter)
    parser.add_argument("--model", type=Path, required=True, help="a model zip saved by DreamerV2.save")
    parser.add_argument("--env", required=True, help="gymnasium env id with the model's spaces")
    parser.add_argument("--steps", type=int, default=200, help="real env steps (fewer if the episode ends) and dream length")
    parser.add_argument("--context", type=int, default=5, help="frames the model sees before predicting alone")
    parser.add_argument("--out", type=Path, default=Path("dreams"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env reset and the model's samples")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second of the animations")
    parser.add_argument("--scale", type=int, default=2, help="integer upscaling of the 64x64 frames")
    parser.add_argument("--safe", action="store_true", help="load with DreamerV2.load_safe (no unpickling)")
    args = parser.parse_args(argv)
    for name in ("steps", "context", "fps", "scale"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    with extras_needed("dream"):
        import imageio  # noqa: F401  (before the model loads: fail at once without it)

    model = _load(args.model, args.safe)
    try:
        image_key(model)
    except ValueError as error:
        parser.error(str(error))
    env = gym.make(args.env)
    args.out.mkdir(parents=True, exist_ok=True)
    comparison = real_vs_imagined(model, env, args.steps, args.context, seed=args.seed, progress_bar=True)
    first_observation, _ = env.reset(seed=args.seed)
    env.close()
    dream = imagined_rollout(model, first_observation, horizon=args.steps, seed=args.seed)

    files = write_animation(args.out / "real_vs_model", comparison, args.fps, args.scale)
    files += write_animation(args.out / "dream", dream.frames, args.fps, args.scale)
    ends = np.flatnonzero(dream.cont.numpy() < 0.5)  # the first frame the model thinks terminal
    last = int(ends[0]) if len(ends) else len(dream.cont) - 1
    end = f"predicted end at step {last}" if len(ends) else "no predicted end"
    dream_return = float(dream.reward[1 : last + 1].sum())
    print(f"Real vs model: {len(comparison)} frames, the model saw the first {min(args.context, len(comparison))}.")
    print(f"Dream: {len(dream.frames)} frames, {end}, predicted return {dream_return:.2f} (in the model's reward scale).")
    print("Wrote " + ", ".join(str(f) for f in files))
    return args.out


if __name__ == "__main__":
    main()
