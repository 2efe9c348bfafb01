"""Convolution layers with faster forms on a CPU: the same parameters and values as ``nn.Conv2d`` and
``nn.ConvTranspose2d``, swapped into the encoder and decoder by :func:`sb3_dreamer.accel.modules.accelerate`
(their classes are replaced in place, so the parameters and ``state_dict`` keys stay as they are).

The whole network is laid out channels-last (NHWC in memory, same shapes and values): oneDNN's and cuDNN's
fast convolution kernels want it (the Atari update's convolutions ran ~1.3-1.6x faster on a CPU).
"""

from typing import Any

import torch as th
from torch import nn
from torch.utils.flop_counter import conv_flop_count, register_flop_formula


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


class FirstConv2d(nn.Conv2d):
    """``nn.Conv2d`` (no padding, square stride) for the encoder's first layer: it lays the image batch out
    channels-last. On the image's 1-3 channels, under ``torch.compile`` on a CPU in fp32, its backward is the
    ``conv_backward`` op, which keeps the gradient channels-last (see there); otherwise it is ``nn.Conv2d``.
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: (N, C_in, H, W). :return: (N, C_out, H', W'), channels-last."""
        x = x.contiguous(memory_format=th.channels_last)
        device = x.device.type
        few_channels = self.in_channels <= 3
        if few_channels and th.compiler.is_compiling() and device == "cpu" and not th.is_autocast_enabled(device):
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


def accelerate_encoder(cnn: nn.Sequential) -> None:
    """Swap the encoder's convolutions for their fast forms, in place: the first lays the batch out
    channels-last, a last one with at most 2x2 outputs is one matmul (:class:`Conv2dFewOutputs`).

    :param cnn: the encoder's ``nn.Sequential`` of ``nn.Conv2d`` (64x64 input), norms and activations.
    """
    convs = [m for m in cnn if type(m) is nn.Conv2d]
    size = 64
    for i, conv in enumerate(convs):
        size = (size - conv.kernel_size[0]) // conv.stride[0] + 1
        if i == 0:
            conv.__class__ = FirstConv2d
        elif size <= 2:
            conv.__class__ = Conv2dFewOutputs
    cnn.to(memory_format=th.channels_last)  # type: ignore[call-overload]


def accelerate_decoder(cnn: nn.Sequential) -> None:
    """Swap the decoder's transposed convolutions for their fast forms, in place: the first (1x1 input) is a
    matmul, the last to 1-3 channels the phase product (CPU), the others add their bias apart.

    :param cnn: the decoder's ``nn.Sequential``: a linear layer, the reshape, transposed convolutions, ...
    """
    convs = [m for m in cnn if type(m) is nn.ConvTranspose2d]
    for i, conv in enumerate(convs):
        if i == 0:
            conv.__class__ = ConvTranspose1x1In
        elif i == len(convs) - 1 and conv.out_channels <= 3:
            conv.__class__ = ConvTransposeFewChannels
        else:
            conv.__class__ = ConvTransposeBiasApart
    cnn.to(memory_format=th.channels_last)  # type: ignore[call-overload]
