"""Read a PyTorch state dict saved in torch's legacy (non-zip) format, without torch.

The format (torch/serialization.py, `_legacy_save`): five pickles in a row (a magic
number, the protocol version, system info, the object itself, the list of storage
keys in the order they follow), then each storage as an 8-byte little-endian element
count and its raw bytes. Tensors in the object are calls to
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) whose storage is
a persistent id. The unpickler below resolves only those few names and refuses any
other global, so a foreign pickle cannot run code.
"""
from __future__ import annotations

import collections
import pickle
import struct
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32}


class FormatError(ValueError):
    """The file is not a legacy torch state dict this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _TensorRef:
    """Where a tensor's values lie: filled in once the storages have been read."""

    def __init__(self, storage, offset, size, stride):
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = int(offset), tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _TensorRef(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise FormatError(f"refusing pickled global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise FormatError(f"unexpected persistent id {str(pid)[:80]}")
        return pid[2], pid[1].dtype   # (key, dtype)


def read_state_dict(f: BinaryIO) -> dict[str, np.ndarray]:
    """{name: array} of a legacy torch state dict, every tensor copied out of its storage."""
    try:
        if pickle.load(f) != MAGIC_NUMBER:
            raise FormatError("no torch magic number: not a legacy torch file")
        if pickle.load(f) != PROTOCOL_VERSION:
            raise FormatError("unknown torch protocol version")
        info = pickle.load(f)
        if not (isinstance(info, dict) and info.get("little_endian")):
            raise FormatError("not a little-endian torch file")
        refs = _Unpickler(f).load()
        keys = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, TypeError) as e:
        raise FormatError(f"unreadable pickle ({e.__class__.__name__}: {e})") from None
    if not isinstance(refs, dict) or not all(isinstance(r, _TensorRef) for r in refs.values()):
        raise FormatError("the object is not a state dict of tensors")
    dtypes = {r.key: r.dtype for r in refs.values()}
    storages = {}
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise FormatError(f"truncated: storage {key} missing")
        (count,) = struct.unpack("<q", head)
        dtype = dtypes.get(key, np.dtype(np.uint8))
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise FormatError(f"truncated: storage {key} holds {len(raw)} of {count * dtype.itemsize} bytes")
        storages[key] = np.frombuffer(raw, dtype)
    out = {}
    for name, r in refs.items():
        if r.key not in storages:
            raise FormatError(f"{name}: its storage {r.key} is not in the file")
        values = storages[r.key]
        strides = tuple(s * values.itemsize for s in r.stride)
        end = r.offset + sum((n - 1) * s for n, s in zip(r.size, r.stride)) + 1 if all(r.size) else r.offset
        if end > len(values):
            raise FormatError(f"{name}: size {r.size} runs past its storage")
        out[name] = np.lib.stride_tricks.as_strided(values[r.offset:], r.size, strides).copy()
    return out
