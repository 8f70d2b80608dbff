"""What a bundle's TFLite file says about itself: the labels, input normalisation and
conventions of the manifest, written into the file's own ``metadata`` table (entry
``edgesmith``, JSON) so an app that only has the ``.tflite`` file can read them.

TFLite's official metadata schema lives in ``tflite-support``, which needs TensorFlow;
a named metadata buffer is plain TFLite schema (the converter writes two itself:
``min_runtime_version``, ``keep_stablehlo_constant``) and is read with the flatbuffer
classes ``ai-edge-litert`` ships. The graph is unchanged (tested: identical outputs, also for
a file whose weights sit after the flatbuffer at buffer offsets)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

NAME = "edgesmith"
MAX_BYTES = 1 << 30  # the object API holds the whole model in memory: big files are left as they are


def write_tflite_metadata(path: str | os.PathLike, meta: dict[str, Any], name: str = NAME) -> None:
    """Add (or replace) the metadata entry ``name`` holding ``meta`` as JSON, in place."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    raw = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(raw, 0))
    # buffers stored after the flatbuffer (``offset``/``size``, as litert-torch writes the
    # default MiniLM student) are not part of the object tree: packing it again would drop
    # them and leave offsets into nothing. Take them in, so the new file holds every byte.
    for buf in model.buffers or []:
        if buf.offset > 1:
            if buf.offset + buf.size > len(raw):
                raise ValueError(f"{path}: buffer at offset {buf.offset} (+{buf.size}) ends past the file's "
                                 f"{len(raw)} bytes")
            buf.data = np.frombuffer(raw, dtype=np.uint8, count=buf.size, offset=buf.offset)
            buf.offset = buf.size = 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if (m.name or b"").decode() != name] + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(builder.Output()))
    os.replace(tmp, path)


def read_tflite_metadata(path: str | os.PathLike, name: str = NAME) -> dict[str, Any] | None:
    """The JSON of metadata entry ``name``, or None."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if m.Name() and m.Name().decode() == name:
            return json.loads(bytes(model.Buffers(m.Buffer()).DataAsNumpy()).decode())
    return None


def bundle_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest an app needs beside the file: task, labels, inputs,
    outputs and preprocessing (mean/std, layout, range, conventions)."""
    pre = {k: v for k, v in (manifest.get("preprocessing") or {}).items() if k != "tokenizer"}
    return {"producer": "edgesmith", "edgesmith": manifest.get("edgesmith"), "task": manifest.get("task"),
            "labels": manifest.get("labels"), "inputs": manifest.get("inputs"), "outputs": manifest.get("outputs"),
            "preprocessing": pre}
