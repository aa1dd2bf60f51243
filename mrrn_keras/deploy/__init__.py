"""Deployment formats beyond the TF Serving SavedModel (`mrrn_keras.export`).

    parts.py    the one place that reaches into a model for the streaming
                parts (initial state, one chunk's step) and names the states
    stream.py   the streaming signatures (`init_states`, `step`) and the
                streaming SavedModel
    litert.py   LiteRT (TFLite) files on built-in ops only: the clip model
                (optionally quantized) and the streaming model
    onnx.py     ONNX, converted from the LiteRT file by tf2onnx
    runtime.py  runs an exported streaming file chunk by chunk, from a video
                file, a stream URL or a camera
    export.py   `export_model`: one entry point for every format (what
                `mrrn export --format` runs)

Everything here but `runtime.py` needs the TensorFlow backend; nothing here
is imported by `import mrrn_keras`.
"""
