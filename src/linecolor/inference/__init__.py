"""The inference wing: everything between a user's drawing and the coloured image, and nothing of training.

* :mod:`~linecolor.inference.pipeline` — :class:`ColorizationPipeline`, the one inference path (CLI, Python, server)
* :mod:`~linecolor.inference.hints` — hint points and RGBA hint layers in
* :mod:`~linecolor.inference.reference` — a reference picture (reference mode), decoded once
* :mod:`~linecolor.inference.conditioning` — letterbox and the network's input tensor (shared with training)
* :mod:`~linecolor.inference.composite` — the output composite: what decides every output colour
* :mod:`~linecolor.inference.runtime` — how the network runs (backends, onnxruntime, warm-up)

Imports stay light: nothing here loads training, datasets, augmentation or evaluation code (a test checks it).
"""
