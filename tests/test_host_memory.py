"""keep_host_memory: freed activations are reused without page faults (glibc only); off unless asked for."""

import platform
import subprocess
import sys

import pytest

# In a fresh process: build a small DreamerV2 on the CPU, free a 128 MB block, then count the page faults of
# writing a 96 MB block (24,576 pages of 4 KB). The second block is smaller so that it fits in the freed one
# whatever lands next to it: PyTorch asks for 64-byte alignment, so a request of the same size needs a few
# bytes more than the freed chunk holds, and when a small block sits after it malloc takes fresh memory.
SCRIPT = """
import resource, sys
import torch as th
from sb3_dreamer import DreamerV2
settings = {} if sys.argv[1] == "default" else {"keep_host_memory": sys.argv[1] == "True"}
DreamerV2("MlpPolicy", "CartPole-v1", deter_size=16, hidden_size=16, mlp_units=16, device="cpu", **settings)
th.ones(32 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
th.ones(24 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(keep_host_memory: bool | str) -> int:
    command = [sys.executable, "-c", SCRIPT, str(keep_host_memory)]
    return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's; other C libraries are left alone")
def test_freed_memory_is_reused_on_cpu():
    assert page_faults(True) < 1_000  # the freed block's pages, already mapped
    assert page_faults(False) > 20_000  # glibc gave the block back: fresh pages, each faulted
    assert page_faults("default") > 20_000  # opt-in: building a model leaves the process's malloc as it is
