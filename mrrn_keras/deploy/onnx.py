"""ONNX, converted from the built-in-ops LiteRT file by tf2onnx.

Routes tried with TF 2.21, Keras 3.15, tf2onnx 1.17, onnxruntime 1.32
(docs/deploy.md): tf2onnx on the traced TensorFlow function leaves the
SRU's XLA-compiled recurrence as `PartitionedCall` nodes that ONNX has no op
for (onnxruntime: "No Op registered for PartitionedCall"); on the frozen
LiteRT flatbuffer every op maps and onnxruntime matches Keras. So the ONNX
file is the clip model of `mrrn_keras.deploy.litert`: uint8 frames
`(1, frames, H, W, 3)` -> `probabilities` float32 `(1, K)`.
"""

import pathlib

ONNX_OPSET = 17


def onnx_from_litert(flatbuffer: bytes, workdir, *, input_name="frames",
                     output_name="probabilities") -> bytes:
    """Converts a one-input, one-output LiteRT flatbuffer to a serialized ONNX model."""
    # Imported here: tf2onnx is only needed for this format.
    import tf2onnx

    path = pathlib.Path(workdir) / "model.tflite"
    path.write_bytes(flatbuffer)
    proto, _ = tf2onnx.convert.from_tflite(str(path), opset=ONNX_OPSET)
    graph = proto.graph
    _rename(graph, graph.input[0].name, input_name)
    _rename(graph, graph.output[0].name, output_name)
    return proto.SerializeToString()


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new
