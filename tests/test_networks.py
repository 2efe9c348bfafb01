"""The fast forms of the conv stacks compute what the plain layers compute."""

import torch as th
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sb3_dreamer.accel.conv import (
    Conv2dFewOutputs,
    ConvTranspose1x1In,
    ConvTransposeBiasApart,
    ConvTransposeFewChannels,
    accelerate_decoder,
    accelerate_encoder,
    conv_backward,
)
from sb3_dreamer.accel.modules import FlatMLP
from sb3_dreamer.common.networks import Decoder, Encoder, mlp


def _fast_encoder(*args, **kwargs) -> Encoder:
    encoder = Encoder(*args, **kwargs)
    accelerate_encoder(encoder.cnn)
    return encoder


def _fast_decoder(*args, **kwargs) -> Decoder:
    decoder = Decoder(*args, **kwargs)
    accelerate_decoder(decoder.cnn)
    return decoder


def test_conv_transpose_on_a_1x1_input_is_the_matmul():
    th.manual_seed(0)
    fast = ConvTranspose1x1In(64, 8, 5, 2)
    plain = nn.ConvTranspose2d(64, 8, 5, 2)
    plain.load_state_dict(fast.state_dict())
    x = th.randn(3, 64, 1, 1, requires_grad=True)
    th.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    (grad_fast,) = th.autograd.grad(fast(x).square().sum(), x)
    (grad_plain,) = th.autograd.grad(plain(x).square().sum(), x)
    th.testing.assert_close(grad_fast, grad_plain, rtol=1e-5, atol=1e-5)


def test_conv_with_few_outputs_is_the_matmul_over_its_patches():
    th.manual_seed(0)
    fast = Conv2dFewOutputs(16, 8, 4, 2)
    plain = nn.Conv2d(16, 8, 4, 2)
    plain.load_state_dict(fast.state_dict())
    for side in (6, 7, 4):  # 2x2, 2x2 with a last row and column the kernel never reaches, 1x1
        x = th.randn(3, 16, side, side).contiguous(memory_format=th.channels_last).requires_grad_(True)
        th.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
        grads_fast = th.autograd.grad(fast(x).square().sum(), [x, fast.weight, fast.bias])
        grads_plain = th.autograd.grad(plain(x).square().sum(), [x, plain.weight, plain.bias])
        for got, expected in zip(grads_fast, grads_plain):
            th.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_fast_conv_transposes_are_the_plain_layer():
    th.manual_seed(0)
    # (class, C_in, C_out, kernel, stride, input side): the decoder's last layers (k6 to 1 channel, k5 to 3), a
    # kernel that is not a multiple of its stride (zero taps added, then cropped), one smaller than its stride.
    cases = [(ConvTransposeFewChannels, 6, 1, 6, 2, 7), (ConvTransposeFewChannels, 6, 3, 5, 2, 6),
             (ConvTransposeFewChannels, 4, 2, 7, 3, 5), (ConvTransposeFewChannels, 4, 2, 2, 3, 4),
             (ConvTransposeBiasApart, 8, 6, 6, 2, 5), (ConvTransposeBiasApart, 8, 6, 5, 2, 3)]  # fmt: skip
    for cls, c_in, c_out, kernel, stride, side in cases:
        fast = cls(c_in, c_out, kernel, stride).double()
        plain = nn.ConvTranspose2d(c_in, c_out, kernel, stride).double()
        plain.load_state_dict(fast.state_dict())
        x = th.randn(2, c_in, side, side, dtype=th.float64).contiguous(memory_format=th.channels_last)
        x.requires_grad_(True)
        th.testing.assert_close(fast(x), plain(x))
        assert fast(x).is_contiguous(memory_format=th.channels_last)
        grad = th.randn_like(plain(x))
        grads_fast = th.autograd.grad(fast(x), [x, fast.weight, fast.bias], grad)
        grads_plain = th.autograd.grad(plain(x), [x, plain.weight, plain.bias], grad)
        for got, expected in zip(grads_fast, grads_plain):
            th.testing.assert_close(got, expected)
        assert th.autograd.gradcheck(fast, (x,))
    with th.autocast("cpu", dtype=th.bfloat16):  # computed in autocast's dtype, as nn.ConvTranspose2d is
        fast, plain = fast.float(), plain.float()
        x = x.detach().float()
        th.testing.assert_close(fast(x), plain(x), rtol=2e-2, atol=2e-2)


def test_plain_stacks_lay_out_no_memory_format():
    """Without ``sb3_dreamer.accel`` the encoder and decoder are plain ``nn.Conv2d`` / ``nn.ConvTranspose2d``."""
    shapes = {"image": (3, 64, 64)}
    encoder, decoder = Encoder(shapes, cnn_depth=4), Decoder(shapes, 20, cnn_depth=4)
    assert {type(m) for m in encoder.cnn if isinstance(m, nn.Conv2d)} == {nn.Conv2d}
    assert {type(m) for m in decoder.cnn if isinstance(m, nn.ConvTranspose2d)} == {nn.ConvTranspose2d}
    assert decoder(th.randn(2, 20))["image"].shape == (2, 3, 64, 64)


def test_channels_last_stacks_match_plain_convolutions():
    th.manual_seed(0)
    shapes = {"image": (3, 64, 64)}
    encoder, decoder = _fast_encoder(shapes, cnn_depth=4, mlp_layers=1, mlp_units=8), _fast_decoder(shapes, 20, cnn_depth=4)
    image, feat = th.rand(2, 5, 3, 64, 64) - 0.5, th.randn(2, 5, 20)
    x = image.flatten(0, 1)
    assert isinstance(encoder.cnn[-3], Conv2dFewOutputs)  # 6x6 -> 2x2: the matmul form
    for layer in encoder.cnn:  # the same layers applied one by one on plain NCHW tensors
        if isinstance(layer, nn.Conv2d):
            x = nn.functional.conv2d(x.contiguous(), layer.weight, layer.bias, stride=2)
        else:
            x = layer(x)
    th.testing.assert_close(encoder({"image": image}), x.reshape(2, 5, -1).contiguous(), rtol=1e-5, atol=1e-5)
    assert isinstance(decoder.cnn[-1], ConvTransposeFewChannels)  # 3 channels: the phase-matmul form
    assert sum(isinstance(layer, ConvTransposeBiasApart) for layer in decoder.cnn) == 3  # the strided ones
    assert isinstance(decoder.cnn[2], ConvTranspose1x1In)
    assert decoder.cnn[2](th.randn(2, 128, 1, 1)).is_contiguous(memory_format=th.channels_last)  # 1x1 -> 5x5
    y = feat.flatten(0, 1)
    for layer in decoder.cnn:
        if isinstance(layer, nn.ConvTranspose2d):
            y = nn.functional.conv_transpose2d(y.contiguous(), layer.weight, layer.bias, stride=2)
        else:
            y = layer(y)
    th.testing.assert_close(decoder(feat)["image"], y.reshape(2, 5, 3, 64, 64), rtol=1e-5, atol=1e-5)
    assert decoder(feat)["image"].shape == (2, 5, 3, 64, 64)


def test_compiled_decoder_keeps_the_fast_layers_and_their_values():
    # The phase-matmul layer is an opaque custom op to torch.compile (inductor's own loops for it ran ~5x slower):
    # it compiles into one graph (fullgraph) with the same values and gradients as eager.
    th.manual_seed(0)
    decoder = _fast_decoder({"image": (1, 64, 64)}, 20, cnn_depth=4)
    feat = th.randn(3, 20, requires_grad=True)

    def loss(feat: th.Tensor) -> th.Tensor:
        return decoder(feat)["image"].square().sum()

    compiled = th.compile(loss, fullgraph=True)
    inputs = [feat, decoder.cnn[-1].weight, decoder.cnn[-1].bias, decoder.cnn[-3].bias]
    for got, expected in zip(th.autograd.grad(compiled(feat), inputs), th.autograd.grad(loss(feat), inputs)):
        th.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_compiled_encoder_gives_the_eager_values_and_gradients():
    # Compiled on a CPU, the first convolution's backward is the opaque conv_backward op (FirstConv2d).
    th.manual_seed(0)
    encoder = _fast_encoder({"image": (1, 64, 64)}, cnn_depth=4)
    image = th.randn(3, 1, 64, 64)

    def loss(image: th.Tensor) -> th.Tensor:
        return encoder({"image": image}).square().sum()

    compiled = th.compile(loss, fullgraph=True)
    params = list(encoder.parameters())
    for got, expected in zip(th.autograd.grad(compiled(image), params), th.autograd.grad(loss(image), params)):
        th.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_opaque_convolution_backward_is_the_convolutions():
    th.manual_seed(0)
    conv = nn.Conv2d(3, 8, 4, 2).to(memory_format=th.channels_last)
    x = th.randn(2, 3, 16, 16).contiguous(memory_format=th.channels_last).requires_grad_()
    grad = th.randn_like(conv(x))
    expected = th.autograd.grad(conv(x), [x, conv.weight, conv.bias], grad)
    got = conv_backward(grad, x.detach(), conv.weight.detach(), 2, False, True, True)
    for g, e in zip(got, expected):
        th.testing.assert_close(g, e)
    assert got[0].is_contiguous(memory_format=th.channels_last)
    skipped = conv_backward(grad, x.detach(), conv.weight.detach(), 2, False, False, False)
    assert skipped[0].numel() == skipped[2].numel() == 0
    th.testing.assert_close(skipped[1], expected[1])


def test_flop_counter_counts_the_phase_matmul_layer_as_the_convolution_it_is():
    counts = []
    for cls in (nn.ConvTranspose2d, ConvTransposeFewChannels):
        layer, x = cls(8, 1, 6, 2), th.randn(2, 8, 5, 5, requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            layer(x).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] > 0


def test_mlp_on_leading_axes_is_the_plain_sequential():
    th.manual_seed(0)
    plain = mlp(6, 2, 2, 8)  # the layers applied to the 3-D tensor as it comes
    net = FlatMLP(*(nn.ELU(inplace=True) if isinstance(layer, nn.ELU) else layer for layer in plain))
    x = th.randn(3, 4, 6, requires_grad=True)
    th.testing.assert_close(net(x), plain(x.clone()))
    (grad,) = th.autograd.grad(net(x).square().sum(), x)
    (grad_plain,) = th.autograd.grad(plain(x.clone()).square().sum(), x)
    th.testing.assert_close(grad, grad_plain)
    assert net(th.randn(6)).shape == (2,) and net(th.randn(0, 6)).shape == (0, 2)


def test_the_continuous_actors_two_heads_start_as_the_references_two_layers():
    """Our one output layer holds the reference's mean and std layers (A units each): each half is initialised with
    glorot_uniform of its own shape, ``limit = sqrt(6 / (units + A))``, not of the whole layer's."""
    import numpy as np
    from gymnasium import spaces

    from sb3_dreamer.dreamer.config import DreamerConfig
    from sb3_dreamer.dreamer.policies import MlpPolicy

    th.manual_seed(0)
    config = DreamerConfig(deter_size=16, hidden_size=16, stoch_size=4, stoch_classes=4, mlp_layers=1, mlp_units=16)
    policy = MlpPolicy(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (16,), np.float32), lambda _: 1e-3, config)
    weight = policy.actor.net[-1].weight.detach()  # (2A, units) = (32, 16)
    limit = (6 / (16 + 16)) ** 0.5  # the whole layer's would be (6 / 48) ** 0.5, 18 % smaller
    for half in weight.chunk(2, 0):
        assert half.abs().max() <= limit
        assert abs(float(half.std()) * 3**0.5 / limit - 1) < 0.08  # 256 uniforms: spread ~2.8 %
