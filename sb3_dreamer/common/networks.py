"""Building blocks: MLPs, the LayerNorm GRU cell, the image/vector encoder and decoder."""

import math
from typing import Any, Literal, cast

import torch as th
from torch import nn
from torch.utils.flop_counter import conv_flop_count, register_flop_formula

from sb3_dreamer.common.onehot_linear import OneHotColumns, onehot_linear
from sb3_dreamer.common.type_aliases import ObsDict

Norm = Literal["none", "layer"]
IMAGE_SIZE = 64


class MLP(nn.Sequential):
    """An ``nn.Sequential`` of linear layers that runs on ``(-1, features)``: with more leading axes, each
    ``nn.Linear``'s output would be a view that the in-place ELU writes into, and autograd then copies every
    gradient of it (~40 ms per backward of a 4x400 head over 15 x 800 imagined states on a CPU).
    """

    def forward(self, x: th.Tensor, onehot: OneHotColumns | None = None) -> th.Tensor:
        """:param x: (*lead, in_dim). :param onehot: where ``x`` holds one-hot groups (``hot``: (*lead, S)), for
        the first layer (``onehot_linear``). :return: (*lead, out)."""
        y = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        if onehot is None:
            y = super().forward(y)
        else:
            first, *rest = self
            y = onehot_linear(cast(nn.Linear, first), y, onehot)  # mlp() starts with a Linear
            for layer in rest:
                y = layer(y)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def mlp(in_dim: int, out_dim: int | None, layers: int, units: int, norm: Norm = "none") -> MLP:
    """``layers`` x (Linear, [LayerNorm], ELU), then an optional linear output layer."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(in_dim, units, bias=norm == "none")]
        if norm == "layer":
            modules.append(nn.LayerNorm(units))
        modules.append(nn.ELU(inplace=True))
        in_dim = units
    if out_dim is not None:
        modules.append(nn.Linear(in_dim, out_dim))
    return MLP(*modules)


class LayerNormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gates and update bias -1 (the reference's ``GRUCell``).

    :param input_size: size of ``x``.
    :param hidden_size: size of the state ``deter``.
    """

    def __init__(self, input_size: int, hidden_size: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_size)
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


class ChannelsLast(nn.Module):
    """Lay a (N, C, H, W) batch out channels-last (NHWC in memory, same shape and values): oneDNN's and
    cuDNN's fast convolution kernels want it (the Atari update's convolutions ran ~1.3-1.6x faster on CPU).
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        return x.contiguous(memory_format=th.channels_last)


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
                depth, out_size = cnn_depth * 2**i, (size - kernel) // 2 + 1
                conv = Conv2dFewOutputs if out_size <= 2 else Conv2dFewChannelsIn if i == 0 and channels <= 3 else nn.Conv2d
                layers += [conv(channels, depth, kernel, 2)]
                if norm == "layer":
                    layers.append(nn.GroupNorm(1, depth))
                layers.append(nn.ELU(inplace=True))
                channels, size = depth, out_size
            self.cnn = nn.Sequential(ChannelsLast(), *layers, nn.Flatten()).to(memory_format=th.channels_last)  # type: ignore[call-overload]
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


class _ConvWithOpaqueBackward(th.autograd.Function):
    """``F.conv2d`` (no padding) whose backward is the ``conv_backward`` op."""

    @staticmethod
    def forward(ctx: Any, x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None, stride: int) -> th.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return nn.functional.conv2d(x, weight, bias, stride)

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, th.Tensor, th.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        input_grad = ctx.needs_input_grad[0]
        grad_x, grad_w, grad_b = conv_backward(grad, x, weight, ctx.stride, False, input_grad, ctx.has_bias)
        return (grad_x if input_grad else None), grad_w, (grad_b if ctx.has_bias else None), None


class Conv2dFewChannelsIn(nn.Conv2d):
    """``nn.Conv2d`` (no padding, square stride) for the encoder's first layer, on the image's 1-3 channels.
    Under ``torch.compile`` on a CPU in fp32 its backward is the ``conv_backward`` op, which keeps the gradient
    channels-last (see there); otherwise, and in eager mode, it is ``nn.Conv2d``.
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: (N, C_in, H, W). :return: (N, C_out, H', W')."""
        device = x.device.type
        if th.compiler.is_compiling() and device == "cpu" and not th.is_autocast_enabled(device):
            return _ConvWithOpaqueBackward.apply(x, self.weight, self.bias, self.stride[0])
        return super().forward(x)


class Conv2dFewOutputs(nn.Conv2d):
    """A convolution (no padding) with few output positions, computed as one matmul over its stacked input
    patches (same parameters, same values as ``nn.Conv2d``). The encoder's last layer (6x6 -> 2x2) ran at
    ~100 GFLOP/s in oneDNN's kernels on a CPU, forward and backward 2.7x slower than this matmul.
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: (N, C_in, H, W), best channels-last. :return: (N, C_out, H', W'), channels-last."""
        n, _, height, width = x.shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        nhwc = x.permute(0, 2, 3, 1)
        patches = [nhwc[:, i * sh : i * sh + kh, j * sw : j * sw + kw] for i in range(out_h) for j in range(out_w)]
        cols = th.stack(patches, 1).reshape(n * out_h * out_w, -1)  # (N * H' * W', kh * kw * C_in)
        y = cols @ self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1).t()
        if self.bias is not None:
            y = y + self.bias
        return y.view(n, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)


class ConvTranspose1x1In(nn.ConvTranspose2d):
    """A transposed convolution whose input is 1x1, computed as the matmul it is: the output is
    ``x @ W.view(C_in, C_out * k * k)`` plus the bias (same parameters, same values as ``nn.ConvTranspose2d``;
    on CPU the convolution kernels ran this layer ~10x slower than the matmul). With a channels-last weight (as
    in the decoder) the matmul reads it in place and writes a channels-last output.
    """

    def forward(self, x: th.Tensor, output_size: list[int] | None = None) -> th.Tensor:
        """:param x: (N, C_in, 1, 1). :param output_size: unused (always k x k). :return: (N, C_out, k, k)."""
        assert x.shape[-2:] == (1, 1), f"ConvTranspose1x1In needs a 1x1 input, got {tuple(x.shape)}"
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)  # (C_in, k * k * C_out)
        y = (x.flatten(1) @ weight).unflatten(1, (*self.kernel_size, self.out_channels))  # (N, k, k, C_out)
        return (y if self.bias is None else y + self.bias).permute(0, 3, 1, 2)


class ConvTransposeBiasApart(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with its bias added by a separate op, so that its gradient is a plain sum: oneDNN's
    transposed-convolution backward computed it ~7x slower than ``sum`` on a CPU (the decoder's 96 -> 48 layer at
    batch 800: 92 ms against 13). Same parameters, same values.
    """

    def _transpose(self, x: th.Tensor) -> th.Tensor:
        """:param x: (N, C_in, H, W). :return: (N, C_out, H', W'), the convolution without its bias."""
        args = (self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        return nn.functional.conv_transpose2d(x, self.weight, None, *args)  # type: ignore[arg-type]

    def forward(self, x: th.Tensor, output_size: list[int] | None = None) -> th.Tensor:
        """:param x: (N, C_in, H, W), best channels-last. :param output_size: unused. :return: (N, C_out, H', W')."""
        y = self._transpose(x)
        return y if self.bias is None else y + self.bias.to(y.dtype)[:, None, None]  # autocast's dtype stays


@th.library.custom_op("sb3_dreamer::conv_backward", mutates_args=(), tags=(th.Tag.needs_exact_strides,))
def conv_backward(
    grad: th.Tensor, x: th.Tensor, weight: th.Tensor, stride: int, transposed: bool, input_grad: bool, bias_grad: bool
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """The gradients of an unpadded convolution (``aten.convolution_backward``), as an op that ``torch.compile``
    passes its tensors as they are. Around the convolutions with 1-3 channels on one side (the image's), inductor
    otherwise wrote the gradient or the saved input in a layout that is neither NCHW nor channels-last (strides
    in the order N, H, C, W), and oneDNN reordered it: ~20-45 ms per such layer at the ``atari`` size on a CPU.

    :param grad: (N, C_out, H', W'). :param x: (N, C_in, H, W). :param weight: as the convolution's.
    :return: the gradients of ``x``, ``weight`` and the bias; ``x``'s and the bias's are empty where not asked for.
    """
    mask = [input_grad, True, bias_grad]
    bias_sizes = [weight.shape[1 if transposed else 0]] if bias_grad else None
    grads = th.ops.aten.convolution_backward(
        grad, x, weight, bias_sizes, [stride] * 2, [0, 0], [1, 1], transposed, [0, 0], 1, mask
    )
    return tuple(g if g is not None else x.new_empty(0) for g in grads)  # type: ignore[return-value]


@conv_backward.register_fake
def _(
    grad: th.Tensor, x: th.Tensor, weight: th.Tensor, stride: int, transposed: bool, input_grad: bool, bias_grad: bool
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=th.channels_last)
    grad_x = th.empty_like(x, memory_format=th.channels_last if channels_last else th.contiguous_format)
    grad_b = x.new_empty(weight.shape[1 if transposed else 0] if bias_grad else 0)
    return (grad_x if input_grad else x.new_empty(0)), th.empty_like(weight), grad_b


@register_flop_formula(th.ops.sb3_dreamer.conv_backward)
def _conv_backward_flops(grad_shape: th.Size, x_shape: th.Size, w_shape: th.Size, stride: int, transposed: bool,
                         input_grad: bool, bias_grad: bool, **kwargs: Any) -> int:  # fmt: skip
    """One convolution's FLOPs for the weight's gradient, one more for the input's (FlopCounterMode does not see
    inside a custom op)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_shape), transposed)
    return forward * (2 if input_grad else 1)


@th.library.custom_op("sb3_dreamer::phase_conv_transpose", mutates_args=(), tags=(th.Tag.needs_fixed_stride_order,))
def phase_conv_transpose(x: th.Tensor, weight: th.Tensor, stride: int) -> th.Tensor:
    """A strided transposed convolution (no bias, no padding) as one matmul into its stride x stride output phases,
    then ``taps**2`` shifted adds (``taps = ceil(k / s)``). An opaque op to ``torch.compile``, whose generated
    loops ran it ~5x slower than this; its backward is PyTorch's convolution kernels.

    :param x: (N, C_in, H, W). :param weight: (C_in, C_out, k, k).
    :return: (N, C_out, (H - 1) s + k, (W - 1) s + k), channels-last.
    """
    n, c_in, height, width = x.shape
    c_out, kernel = weight.shape[1], weight.shape[-1]
    taps = -(-kernel // stride)
    pad = taps * stride - kernel  # zero taps that make the kernel a multiple of the stride
    # Rows ordered (a, b, p, q, C_out) where the kernel offset is (a * s + p, b * s + q).
    rows = nn.functional.pad(weight, (0, pad, 0, pad)).view(c_in, c_out, taps, stride, taps, stride)
    rows = rows.permute(2, 4, 3, 5, 1, 0).reshape(-1, c_in)
    cols = rows @ x.permute(0, 2, 3, 1).reshape(-1, c_in).t()  # (taps * taps * s * s * C_out, N * H * W)
    cols = cols.view(taps, taps, stride, stride, c_out, n, height, width)
    phases = x.new_zeros(stride, stride, c_out, n, height + taps - 1, width + taps - 1)
    for a in range(taps):
        for b in range(taps):
            phases[..., a : a + height, b : b + width] += cols[a, b]
    # Output row (Y * s + p), column (X * s + q): channels-last (N, Y, p, X, q, C_out), then crop the pad.
    y = phases.permute(3, 4, 0, 5, 1, 2).reshape(n, (height + taps - 1) * stride, (width + taps - 1) * stride, c_out)
    y = y.permute(0, 3, 1, 2)[..., : y.shape[1] - pad, : y.shape[2] - pad]
    return y.contiguous(memory_format=th.channels_last)


@phase_conv_transpose.register_fake
def _(x: th.Tensor, weight: th.Tensor, stride: int) -> th.Tensor:
    n, _, height, width = x.shape
    kernel = weight.shape[-1]
    shape = (n, weight.shape[1], (height - 1) * stride + kernel, (width - 1) * stride + kernel)
    return x.new_empty(shape).contiguous(memory_format=th.channels_last)


def _phase_conv_transpose_context(ctx: Any, inputs: tuple[th.Tensor, th.Tensor, int], output: th.Tensor) -> None:
    x, weight, stride = inputs
    ctx.save_for_backward(x, weight)
    ctx.stride = stride


def _phase_conv_transpose_backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, th.Tensor | None, None]:
    x, weight = ctx.saved_tensors
    grad_x, grad_w, _ = conv_backward(grad, x, weight, ctx.stride, True, ctx.needs_input_grad[0], False)
    return (grad_x if ctx.needs_input_grad[0] else None), grad_w, None


phase_conv_transpose.register_autograd(_phase_conv_transpose_backward, setup_context=_phase_conv_transpose_context)


@register_flop_formula(th.ops.sb3_dreamer.phase_conv_transpose)
def _phase_conv_transpose_flops(x_shape: th.Size, w_shape: th.Size, *args: Any, **kwargs: Any) -> int:
    """The transposed convolution's FLOPs (FlopCounterMode does not see inside a custom op)."""
    n, c_in, height, width = x_shape
    return 2 * n * height * width * c_in * w_shape[1] * w_shape[2] * w_shape[3]


class ConvTransposeFewChannels(ConvTransposeBiasApart):
    """A strided transposed convolution (no padding) to few channels, the decoder's last layer (to the image's
    1 or 3 channels): its forward is one matmul over the input pixels into the stride x stride output phases,
    then a few shifted adds; the backward is PyTorch's. Same parameters, same values as ``nn.ConvTranspose2d``;
    for 48 -> 1 channels, k6, at batch 800 the forward took ~33 ms against oneDNN's ~120 on a CPU. Only measured
    on CPUs: on other devices it runs PyTorch's kernel.
    """

    def _transpose(self, x: th.Tensor) -> th.Tensor:
        if x.device.type != "cpu":
            return super()._transpose(x)
        square = self.stride[0] == self.stride[1] and self.kernel_size[0] == self.kernel_size[1]
        assert square and self.padding == (0, 0) and self.dilation == (1, 1) and self.groups == 1, (
            "ConvTransposeFewChannels takes square kernels and strides, no padding, dilation or groups"
        )
        weight, device = self.weight, x.device.type
        if th.is_autocast_enabled(device):  # what autocast does for conv_transpose2d: compute in its dtype
            dtype = th.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
        with th.autocast(device, enabled=False):
            return phase_conv_transpose(x, weight, self.stride[0])


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
            layers: list[nn.Module] = [
                nn.Linear(feat_size, 32 * cnn_depth), nn.Unflatten(-1, (32 * cnn_depth, 1, 1)), ChannelsLast(),
            ]  # fmt: skip
            channels = 32 * cnn_depth
            for i, kernel in enumerate(cnn_kernels):
                last = i == n - 1
                depth = out_channels if last else cnn_depth * 2 ** (n - i - 2)
                if i == 0:
                    layer: type[nn.ConvTranspose2d] = ConvTranspose1x1In
                elif last and depth <= 3:
                    layer = ConvTransposeFewChannels
                else:
                    layer = ConvTransposeBiasApart
                layers.append(layer(channels, depth, kernel, 2))
                if not last:
                    if norm == "layer":
                        layers.append(nn.GroupNorm(1, depth))
                    layers.append(nn.ELU(inplace=True))
                channels = depth
            self.cnn = nn.Sequential(*layers).to(memory_format=th.channels_last)  # type: ignore[call-overload]
        if self.vector_keys:
            out_dim = sum(shapes[k][0] for k in self.vector_keys)
            self.mlp = mlp(feat_size, out_dim, mlp_layers, mlp_units, norm)

    def forward(self, feat: th.Tensor, onehot: OneHotColumns | None = None) -> ObsDict:
        """:param feat: (*lead, F). :param onehot: where ``feat`` holds one-hot groups (``hot``: (*lead, S)), for
        the first layers (``onehot_linear``). :return: key -> (*lead, *shape) means."""
        lead = feat.shape[:-1]
        out: ObsDict = {}
        if self.cnn is not None:
            first, *rest = self.cnn  # a Linear, then the reshape and the transposed convolutions
            x = onehot_linear(cast(nn.Linear, first), feat.reshape(-1, feat.shape[-1]), onehot)
            for layer in rest:
                x = layer(x)
            x = x.reshape(*lead, *x.shape[1:])
            out.update(zip(self.image_keys, x.split([self.shapes[k][0] for k in self.image_keys], -3)))
        if self.mlp is not None:
            x = self.mlp(feat, onehot)
            out.update(zip(self.vector_keys, x.split([self.shapes[k][0] for k in self.vector_keys], -1)))
        return out
