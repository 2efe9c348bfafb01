"""Loading a saved agent without unpickling anything.

SB3's zip stores its ``data`` entry with cloudpickle (spaces, schedules, any attribute), and ``load``
unpickles it: a model file from someone else can run code on your machine. ``DreamerV2.save`` therefore also
writes ``sb3_dreamer.json`` into the zip: the policy alias, the plain hyperparameters, the spaces and the
counters, as JSON. :func:`read_safe` reads only that entry and ``policy.pth`` (with ``torch.load(...,
weights_only=True)``, which refuses anything but tensors and plain containers), so
``DreamerV2.load_safe`` rebuilds the agent from plain data. It can also check the file's SHA-256 first.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import pickle
import zipfile
import zlib
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces

SPEC = "sb3_dreamer.json"


def sha256(path: str | pathlib.Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


FORMAT = 1


class SafeModel(NamedTuple):
    """What :func:`read_safe` takes from a model zip."""

    spec: dict[str, Any]  # policy, hyperparameters, spaces, counters
    state_dict: dict[str, th.Tensor]  # policy parameters and buffers


def _plain(array: np.ndarray) -> Any:
    """A Box bound as a number when it is uniform, else nested lists (JSON writes inf as Infinity)."""
    flat = np.unique(array)
    return flat[0].item() if flat.size == 1 else array.tolist()


def encode_space(space: spaces.Space) -> dict[str, Any]:
    """A Box, Discrete or Dict space as plain JSON data."""
    if isinstance(space, spaces.Box):
        return dict(
            type="Box", shape=list(space.shape), dtype=str(space.dtype), low=_plain(space.low), high=_plain(space.high)
        )
    if isinstance(space, spaces.Discrete):
        return dict(type="Discrete", n=int(space.n), start=int(space.start))
    if isinstance(space, spaces.Dict):
        return dict(type="Dict", spaces={key: encode_space(value) for key, value in space.spaces.items()})
    raise ValueError(f"Cannot encode {space} as plain data (DreamerV2 uses Box, Discrete and Dict spaces).")


def decode_space(data: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`encode_space`."""
    if data["type"] == "Box":
        shape, dtype = tuple(data["shape"]), np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype), shape)
        high = np.broadcast_to(np.asarray(data["high"], dtype), shape)
        return spaces.Box(low, high, shape, dtype)
    if data["type"] == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    if data["type"] == "Dict":
        return spaces.Dict({key: decode_space(value) for key, value in data["spaces"].items()})
    raise ValueError(f"Unknown space type {data['type']!r} in {SPEC}.")


def write_spec(path: str | pathlib.Path, spec: dict[str, Any]) -> None:
    """Add the JSON spec to a model zip written by SB3's ``save``."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(SPEC, json.dumps({"format": FORMAT, **spec}, indent=1))


def read_safe(path: str | pathlib.Path, expected_sha256: str | None = None, device: th.device | str = "cpu") -> SafeModel:
    """The spec and the policy's tensors of a model zip, without unpickling anything.

    :param expected_sha256: refuse the file unless its SHA-256 is this (hex).
    :raises ValueError: for a checksum mismatch, a damaged zip, a zip without the spec, or a ``policy.pth``
        holding anything but tensors and plain containers.
    """
    path = pathlib.Path(path)
    if path.suffix == "" and not path.exists():
        path = path.with_suffix(".zip")
    if expected_sha256 is not None and sha256(path) != expected_sha256.lower():
        raise ValueError(
            f"{path} has SHA-256 {sha256(path)}, expected {expected_sha256}: the file is not the one published "
            "(damaged or replaced). Download it again."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if SPEC not in names:
                raise ValueError(
                    f"{path} has no {SPEC} (not saved by sb3_dreamer >= 0.3's DreamerV2.save), so it cannot be "
                    "loaded without unpickling. Use DreamerV2.load only if you trust its source."
                )
            spec = json.loads(archive.read(SPEC))
            payload = archive.read("policy.pth")
    except (zipfile.BadZipFile, zlib.error, EOFError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a complete model zip (truncated or damaged: {error}); get it again.") from error
    except KeyError as error:
        raise ValueError(f"{path} has no policy.pth: not a DreamerV2 model zip.") from error
    try:
        state_dict = th.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: policy.pth holds more than tensors and plain data, which a safe load refuses ({error})."
        ) from error
    except RuntimeError as error:  # a damaged tensor archive
        raise ValueError(f"{path}: policy.pth is damaged ({error}); get the file again.") from error
    if spec.get("format") != FORMAT:
        raise ValueError(f"{path}: {SPEC} format {spec.get('format')!r} is not {FORMAT}; upgrade sb3_dreamer.")
    return SafeModel(spec, state_dict)
