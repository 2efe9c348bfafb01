"""Time each convolution of the ``atari`` encoder/decoder alone (forward, backward, GFLOP/s) on a CPU.

    python benchmarks/conv_layers.py --threads 2 --out benchmarks/results/conv_layers_cpu.json

The update's convolutions run at ~230 GFLOP/s overall against ~290 for its matmuls; this shows which layers
hold them back (batch 800 = 16 x 50 replay steps, channels-last, as in the update). For oneDNN's own layers
(``nn.Conv2d``, ``nn.ConvTranspose2d``) it also times each pass alone (``passes``): the forward, the input's
gradient and the weight's gradient, each the same FLOPs. A strided convolution's input gradient and a
transposed convolution's forward are the same kind of kernel (``ONEDNN_VERBOSE=1`` names it).
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch as th
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sb3_dreamer.common.host_memory import keep_freed_memory
from sb3_dreamer.common.networks import Conv2dFewOutputs, ConvTransposeBiasApart, ConvTransposeFewChannels

# name -> (layer, input side, whether its input needs a gradient); the plain PyTorch layers (oneDNN's kernels).
# The decoder's first layer (1x1 input) is a matmul in ours (``ConvTranspose1x1In``), so it is left out.
LAYERS = {
    "encoder 1 (1->48, k4)": (lambda: nn.Conv2d(1, 48, 4, 2), 64, False),
    "encoder 2 (48->96, k4)": (lambda: nn.Conv2d(48, 96, 4, 2), 31, True),
    "encoder 3 (96->192, k4)": (lambda: nn.Conv2d(96, 192, 4, 2), 14, True),
    "encoder 4 (192->384, k4)": (lambda: nn.Conv2d(192, 384, 4, 2), 6, True),
    "encoder 4 as Conv2dFewOutputs (what the encoder uses)": (lambda: Conv2dFewOutputs(192, 384, 4, 2), 6, True),
    "decoder 2 (192->96, k5)": (lambda: nn.ConvTranspose2d(192, 96, 5, 2), 5, True),
    "decoder 2 as ConvTransposeBiasApart (what the decoder uses)": (lambda: ConvTransposeBiasApart(192, 96, 5, 2), 5, True),
    "decoder 3 (96->48, k6)": (lambda: nn.ConvTranspose2d(96, 48, 6, 2), 13, True),
    "decoder 3 as ConvTransposeBiasApart (what the decoder uses)": (lambda: ConvTransposeBiasApart(96, 48, 6, 2), 13, True),
    "decoder 4 (48->1, k6)": (lambda: nn.ConvTranspose2d(48, 1, 6, 2), 30, True),
    "decoder 4 as ConvTransposeFewChannels (what the decoder uses)": (lambda: ConvTransposeFewChannels(48, 1, 6, 2), 30, True),
}


def time_layer(layer: nn.Module, side: int, needs_grad: bool, batch: int, repeats: int = 4) -> dict:
    layer = layer.to(memory_format=th.channels_last)  # type: ignore[call-overload]
    x = th.randn(batch, layer.in_channels, side, side).contiguous(memory_format=th.channels_last)
    x.requires_grad_(needs_grad)
    grad = th.randn_like(layer(x))
    with FlopCounterMode(display=False) as counter:
        layer(x).backward(grad)
    forward_s = backward_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        y = layer(x)
        middle = time.perf_counter()
        y.backward(grad)
        forward_s, backward_s = min(forward_s, middle - start), min(backward_s, time.perf_counter() - middle)
    gflop = counter.get_total_flops() / 1e9
    return {"forward_ms": round(forward_s * 1e3, 1), "backward_ms": round(backward_s * 1e3, 1),
            "gflop": round(gflop, 1), "gflops": round(gflop / (forward_s + backward_s), 1)}  # fmt: skip


def _best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def conv_passes(layer: nn.Conv2d | nn.ConvTranspose2d, x: th.Tensor, grad: th.Tensor) -> dict[str, Callable[[], th.Tensor]]:
    """The three passes of one of oneDNN's layers, each alone: the forward, the input's gradient and the
    weight's gradient for the output gradient ``grad`` (what autograd's backward computes together)."""
    weight = layer.weight.detach()
    transposed = isinstance(layer, nn.ConvTranspose2d)
    geometry = (layer.stride, layer.padding, layer.dilation, transposed, layer.output_padding, layer.groups)

    def backward(mask: list[bool], index: int) -> Callable[[], th.Tensor]:
        return lambda: th.ops.aten.convolution_backward(grad, x, weight, None, *geometry, mask + [False])[index]

    return {"forward": lambda: layer(x), "input_grad": backward([True, False], 0), "weight_grad": backward([False, True], 1)}


def time_passes(layer: nn.Conv2d | nn.ConvTranspose2d, side: int, batch: int, repeats: int = 4) -> dict:
    """:func:`conv_passes` timed: ms and GFLOP/s of each (the three have the forward's FLOPs)."""
    layer = layer.to(memory_format=th.channels_last)  # type: ignore[call-overload]
    x = th.randn(batch, layer.in_channels, side, side).contiguous(memory_format=th.channels_last)
    with th.no_grad():
        with FlopCounterMode(display=False) as counter:
            grad = th.randn_like(layer(x))
        gflop = counter.get_total_flops() / 1e9
        times = {name: _best_ms(fn, repeats) for name, fn in conv_passes(layer, x, grad).items()}
    return {f"{name}_ms": round(ms, 1) for name, ms in times.items()} | {
        f"{name}_gflops": round(gflop / ms * 1e3, 1) for name, ms in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=800)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    th.manual_seed(0)
    keep_freed_memory()  # as DreamerV2 does on a CPU: no page faults in the timings
    rows = {}
    for name, (make, side, needs_grad) in LAYERS.items():
        layer = make()
        rows[name] = time_layer(layer, side, needs_grad, args.batch)
        if type(layer) in (nn.Conv2d, nn.ConvTranspose2d):  # oneDNN's own, not ours
            rows[name]["passes"] = time_passes(cast(nn.Conv2d | nn.ConvTranspose2d, layer), side, args.batch)
        print(name, rows[name], flush=True)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "batch": args.batch, "layers": rows}, indent=1))


if __name__ == "__main__":
    main()
