"""Building blocks: MLPs, the LayerNorm GRU cell, the image/vector encoder and decoder.

Plain PyTorch layers that state the maths; :mod:`sb3_dreamer.accel` swaps faster forms of some of them in
place (same parameters, same values).
"""

from typing import Literal

import torch as th
from torch import nn

from sb3_dreamer.common.type_aliases import ObsDict

Norm = Literal["none", "layer"]
IMAGE_SIZE = 64


class MLP(nn.Sequential):
    """Linear layers with ELU activations (see :func:`mlp`), applied over any leading axes: (*lead, in) -> (*lead, out)."""


# Keras' LayerNormalization epsilon (the reference's; PyTorch's default is 1e-5).
LAYER_NORM_EPS = 1e-3


def keras_init(module: nn.Module) -> None:
    """Keras' default initialisers, the reference's: glorot_uniform weights (``limit = sqrt(6 / (fan_in + fan_out))``,
    the receptive field included) and zero biases, for every linear and (transposed) convolution layer in
    ``module``. Norm layers keep ones and zeros."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a (N, C, H, W) batch (Keras' ``LayerNormalization`` on a conv
    layer's NHWC output, as the reference normalises its CNNs with ``norm: layer``)."""

    def forward(self, x: th.Tensor) -> th.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def mlp(in_dim: int, out_dim: int | None, layers: int, units: int, norm: Norm = "none") -> MLP:
    """``layers`` x (Linear, [LayerNorm], ELU), then an optional linear output layer."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(in_dim, units)]
        if norm == "layer":
            modules.append(nn.LayerNorm(units, eps=LAYER_NORM_EPS))
        modules.append(nn.ELU())
        in_dim = units
    if out_dim is not None:
        modules.append(nn.Linear(in_dim, out_dim))
    return MLP(*modules)


class LayerNormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gates and update bias -1 (the reference's ``GRUCell``)::

        reset, cand, update = LayerNorm(W [x, deter] + b)
        deter' = sigmoid(update - 1) * tanh(sigmoid(reset) * cand) + (1 - sigmoid(update - 1)) * deter

    :param input_size: size of ``x``.
    :param hidden_size: size of the state ``deter``.
    """

    def __init__(self, input_size: int, hidden_size: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size)
        self.norm = nn.LayerNorm(3 * hidden_size, eps=LAYER_NORM_EPS)
        self.update_bias = update_bias

    def forward(self, x: th.Tensor, deter: th.Tensor) -> th.Tensor:
        """:param x: (B, I). :param deter: (B, D). :return: (B, D) the next state."""
        return self.gates(self.linear(th.cat([x, deter], -1)), deter)

    def gates(self, projected: th.Tensor, deter: th.Tensor) -> th.Tensor:
        """The cell after its linear layer. :param projected: (B, 3D), ``linear([x, deter])``.
        :param deter: (B, D). :return: (B, D) the next state."""
        reset, cand, update = self.norm(projected).chunk(3, -1)
        cand = th.tanh(th.sigmoid(reset) * cand)
        update = th.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * deter


def split_keys(shapes: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str]]:
    """Image keys (3-D, channel first) and vector keys (1-D) of an observation space."""
    image_keys = [k for k, s in shapes.items() if len(s) == 3]
    vector_keys = [k for k, s in shapes.items() if len(s) == 1]
    other = [k for k in shapes if k not in image_keys and k not in vector_keys]
    if other:
        raise ValueError(
            f"Observation keys {other} have shapes {[shapes[k] for k in other]}: DreamerV2 takes images "
            "(C, 64, 64) and flat vectors (n,). Flatten the vectors (gymnasium.wrappers.FlattenObservation) "
            "and give grayscale images a channel axis, e.g. (64, 64, 1)."
        )
    for key in image_keys:
        if shapes[key][1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"Image observation '{key}' has shape {shapes[key]} (after channel-first transpose), expected "
                f"(C, {IMAGE_SIZE}, {IMAGE_SIZE}). Resize it, e.g. gymnasium.wrappers.ResizeObservation(env, (64, 64))."
            )
    return image_keys, vector_keys


def preprocess_obs(obs: ObsDict, image_keys: list[str]) -> ObsDict:
    """Images uint8 [0, 255] -> float [-0.5, 0.5]; vectors -> float."""
    return {k: (v.float() / 255.0 - 0.5) if k in image_keys else v.float() for k, v in obs.items()}


class VectorObsNorm(nn.Module):
    """Standardise the vector observations per dimension, ``(x - mean) / std``, with statistics set once and
    saved with the model (``DreamerV2(normalize_obs=True)`` sets them from the replay when training starts);
    the identity until then. The decoder then reconstructs standardised vectors, so each dimension weighs in
    the unit-variance reconstruction loss by its spread rather than its units: CartPole's pole angle
    (spread ~0.05 rad) otherwise adds ~1e-3 nats and the model learns to ignore it.

    :param sizes: vector key -> number of dimensions. :param min_std: floor of ``std`` (constant dimensions).
    """

    def __init__(self, sizes: dict[str, int], min_std: float = 1e-2):
        super().__init__()
        self.sizes, self.min_std = sizes, min_std
        self.mean: th.Tensor
        self.std: th.Tensor
        self.is_set: th.Tensor
        self.register_buffer("mean", th.zeros(sum(sizes.values())))
        self.register_buffer("std", th.ones(sum(sizes.values())))
        self.register_buffer("is_set", th.zeros((), dtype=th.bool))

    @th.no_grad()
    def set_statistics(self, obs: ObsDict) -> None:
        """:param obs: vector key -> (N, D) observations to take the mean and std from (N >= 2)."""
        x = th.cat([obs[key].float().reshape(-1, size) for key, size in self.sizes.items()], -1)
        if x.shape[0] < 2:
            raise ValueError(f"VectorObsNorm needs at least 2 observations for its statistics, got {x.shape[0]}.")
        self.mean.copy_(x.mean(0))  # in place: a captured CUDA graph reads the new values
        self.std.copy_(x.std(0).clamp_min(self.min_std))
        self.is_set.fill_(True)

    def forward(self, obs: ObsDict) -> ObsDict:
        """:param obs: key -> (*lead, D) float. :return: the same keys, vector keys standardised."""
        sizes = list(self.sizes.values())
        stats = zip(self.sizes, self.mean.split(sizes), self.std.split(sizes))
        return {**obs, **{key: (obs[key] - mean) / std for key, mean, std in stats}}


class Encoder(nn.Module):
    """CNN (4 convs, depth ``cnn_depth * 2**i``, kernel 4, stride 2, ELU) for the image keys and an
    MLP for the vector keys; the embeddings are concatenated.

    :param shapes: observation key -> shape (images channel first).
    """

    def __init__(
        self,
        shapes: dict[str, tuple[int, ...]],
        cnn_depth: int = 48,
        cnn_kernels: tuple[int, ...] = (4, 4, 4, 4),
        mlp_layers: int = 4,
        mlp_units: int = 400,
        norm: Norm = "none",
    ):
        super().__init__()
        self.image_keys, self.vector_keys = split_keys(shapes)
        self.embed_size = 0
        self.cnn: nn.Sequential | None = None
        self.mlp: nn.Sequential | None = None
        if self.image_keys:
            channels = sum(shapes[k][0] for k in self.image_keys)
            layers: list[nn.Module] = []
            size = IMAGE_SIZE
            for i, kernel in enumerate(cnn_kernels):
                depth, size = cnn_depth * 2**i, (size - kernel) // 2 + 1
                layers.append(nn.Conv2d(channels, depth, kernel, 2))
                if norm == "layer":
                    layers.append(ChannelLayerNorm(depth, eps=LAYER_NORM_EPS))
                layers.append(nn.ELU())
                channels = depth
            self.cnn = nn.Sequential(*layers, nn.Flatten())
            self.embed_size += channels * size * size
        if self.vector_keys:
            in_dim = sum(shapes[k][0] for k in self.vector_keys)
            self.mlp = mlp(in_dim, None, mlp_layers, mlp_units, norm)
            self.embed_size += mlp_units

    def forward(self, obs: ObsDict) -> th.Tensor:
        """:param obs: preprocessed, key -> (*lead, *shape). :return: (*lead, E)."""
        outputs = []
        if self.cnn is not None:
            x = th.cat([obs[k] for k in self.image_keys], -3)
            lead = x.shape[:-3]
            outputs.append(self.cnn(x.reshape(-1, *x.shape[-3:])).reshape(*lead, -1))
        if self.mlp is not None:
            outputs.append(self.mlp(th.cat([obs[k] for k in self.vector_keys], -1)))
        return th.cat(outputs, -1)


class Decoder(nn.Module):
    """Mirror of the encoder: a linear layer to (32 * depth, 1, 1), 4 transposed convs (kernels 5, 5, 6, 6,
    stride 2) to 64x64 for the image keys, an MLP for the vector keys. Outputs are the means of
    unit-variance Gaussians.
    """

    def __init__(
        self,
        shapes: dict[str, tuple[int, ...]],
        feat_size: int,
        cnn_depth: int = 48,
        cnn_kernels: tuple[int, ...] = (5, 5, 6, 6),
        mlp_layers: int = 4,
        mlp_units: int = 400,
        norm: Norm = "none",
    ):
        super().__init__()
        self.shapes = shapes
        self.image_keys, self.vector_keys = split_keys(shapes)
        self.cnn: nn.Sequential | None = None
        self.mlp: nn.Sequential | None = None
        if self.image_keys:
            out_channels = sum(shapes[k][0] for k in self.image_keys)
            n = len(cnn_kernels)
            layers: list[nn.Module] = [nn.Linear(feat_size, 32 * cnn_depth), nn.Unflatten(-1, (32 * cnn_depth, 1, 1))]
            channels = 32 * cnn_depth
            for i, kernel in enumerate(cnn_kernels):
                last = i == n - 1
                depth = out_channels if last else cnn_depth * 2 ** (n - i - 2)
                layers.append(nn.ConvTranspose2d(channels, depth, kernel, 2))
                if not last:
                    if norm == "layer":
                        layers.append(ChannelLayerNorm(depth, eps=LAYER_NORM_EPS))
                    layers.append(nn.ELU())
                channels = depth
            self.cnn = nn.Sequential(*layers)
        if self.vector_keys:
            out_dim = sum(shapes[k][0] for k in self.vector_keys)
            self.mlp = mlp(feat_size, out_dim, mlp_layers, mlp_units, norm)

    def forward(self, feat: th.Tensor) -> ObsDict:
        """:param feat: (*lead, F). :return: key -> (*lead, *shape) means."""
        lead = feat.shape[:-1]
        out: ObsDict = {}
        if self.cnn is not None:
            x = self.cnn(feat.reshape(-1, feat.shape[-1]))
            x = x.reshape(*lead, *x.shape[1:])
            out.update(zip(self.image_keys, x.split([self.shapes[k][0] for k in self.image_keys], -3)))
        if self.mlp is not None:
            x = self.mlp(feat)
            out.update(zip(self.vector_keys, x.split([self.shapes[k][0] for k in self.vector_keys], -1)))
        return out
