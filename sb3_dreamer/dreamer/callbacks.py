"""Callbacks that show what the world model learns."""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat, Video

from sb3_dreamer.dreamer.dreams import as_rgb, image_key, isolated_rng, open_loop_prediction

if TYPE_CHECKING:
    from sb3_dreamer.dreamer.dreamer import DreamerV2


def tensorboard_can_write_videos() -> bool:
    """Whether torch's ``SummaryWriter.add_video`` works: it imports ``moviepy.editor``, which moviepy 2 removed
    (pytorch/pytorch#147317); with moviepy 2 it prints a message and writes nothing.
    """
    try:
        return importlib.util.find_spec("moviepy.editor") is not None
    except ModuleNotFoundError:  # moviepy itself is missing
        return False


class OpenLoopVideoCallback(BaseCallback):
    """Log the world model's open-loop predictions of replay windows as a video, ``world_model/open_loop``
    (what danijar/dreamerv2 logs as ``openl_image``; see :func:`~sb3_dreamer.dreamer.dreams.open_loop_prediction`):
    rows true / model / error, ``n`` windows side by side, the posterior seeing the first ``context`` frames.

    Only TensorBoard gets the video (needs ``moviepy<2``, see :func:`tensorboard_can_write_videos`). Each video
    costs one ``replay_buffer.sample`` and a forward pass; torch's random generators are left as they were.

    :param log_freq: environment steps between videos (the first once training has started).
    :param context: frames the posterior sees, in [1, ``sequence_length``].
    :param n: replay windows side by side.
    :param fps: frames per second of the video.
    :param verbose: 1 prints when a video is recorded.
    """

    model: DreamerV2

    def __init__(self, log_freq: int = 10_000, context: int = 5, n: int = 6, fps: float = 10.0, verbose: int = 0):
        super().__init__(verbose)
        for name, value in (("log_freq", log_freq), ("context", context), ("n", n), ("fps", fps)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}.")
        self.log_freq, self.context, self.n, self.fps = log_freq, context, n, fps
        self._last_video = 0  # multiple of log_freq at or before the last video

    def _init_callback(self) -> None:
        image_key(self.model)  # fail at the start of learn, not after hours, for a model without images
        if self.context > self.model.config.sequence_length:
            raise ValueError(
                f"context ({self.context}) must be at most the model's sequence_length "
                f"({self.model.config.sequence_length}): the open-loop video shows replay windows of that length."
            )
        tensorboard = any(isinstance(f, TensorBoardOutputFormat) for f in self.logger.output_formats)
        if tensorboard and not tensorboard_can_write_videos():
            warnings.warn(
                "OpenLoopVideoCallback: TensorBoard cannot write videos with the installed moviepy (torch imports "
                "moviepy.editor, which moviepy 2 removed, pytorch/pytorch#147317), so no video will appear. "
                "Install moviepy<2: pip install 'moviepy<2'.",
                stacklevel=2,
            )

    def _ready(self) -> bool:
        return self.model._n_updates > 0 and self.model.replay_buffer.can_sample(self.model.config.sequence_length)

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last_video >= self.log_freq and self._ready():
            self._last_video = self.num_timesteps - self.num_timesteps % self.log_freq
            self.logger.record("world_model/open_loop", self.video(), exclude=("stdout", "log", "json", "csv"))
            if self.verbose >= 1:
                print(f"OpenLoopVideoCallback: open-loop video at {self.num_timesteps} steps")
        return True

    def video(self) -> Video:
        """One open-loop video of ``n`` freshly sampled replay windows: frames (1, T, 3, 3 * H, n * W) uint8."""
        batch = self.model.replay_buffer.sample(self.n, self.model.config.sequence_length)
        with isolated_rng(self.model.device):
            frames = open_loop_prediction(self.model, batch, self.context, self.n)  # (T, C, 3H, nW)
        return Video(as_rgb(frames, 1)[None], self.fps)


__all__ = ["OpenLoopVideoCallback", "tensorboard_can_write_videos"]
