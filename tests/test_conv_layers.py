"""benchmarks/conv_layers.py times each pass of a convolution alone: the passes it times are autograd's."""

import pytest
import torch as th
from torch import nn

from benchmarks.conv_layers import conv_passes


@pytest.mark.parametrize("make", [lambda: nn.Conv2d(3, 5, 4, 2), lambda: nn.ConvTranspose2d(5, 3, 5, 2)])
def test_each_pass_is_what_autograd_computes(make):
    th.manual_seed(0)
    layer = make().to(memory_format=th.channels_last)
    x = th.randn(2, layer.in_channels, 9, 9).contiguous(memory_format=th.channels_last).requires_grad_()
    y = layer(x)
    grad = th.randn_like(y)
    y.backward(grad)
    passes = conv_passes(layer, x.detach(), grad)
    with th.no_grad():
        th.testing.assert_close(passes["forward"](), y)
        th.testing.assert_close(passes["input_grad"](), x.grad)
        th.testing.assert_close(passes["weight_grad"](), layer.weight.grad)
