"""Ship a trained model: ``seqlab export RUN`` writes ONNX files and export.json (seqlab.export.writer, with the
graphs' contracts in seqlab.export.graphs), and seqlab.export.runtime runs them with numpy, onnxruntime and
seqlab's tokenizers, without torch.

This package imports nothing at import time, so ``from seqlab.export.runtime import load`` never imports torch.
"""
