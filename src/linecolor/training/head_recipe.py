"""The bundled region head's recipe: the defaults of ``linecolor train-head`` and
:func:`linecolor.training.region_head.train_region_head`.

Its own module, free of heavy imports, because the command line builds its parser (and help texts) from these on
every call, and :mod:`linecolor.training.region_head` takes most of a second to import. Why each value:
docs/measurements.md (output versions 14 and 15).
"""

from __future__ import annotations

DRAWINGS_PER_SOURCE = 1200
"""Training drawings per data source coloured by default, evenly spread over each train split (Fluent and Toon Head
have about 1,400). 200 → 400 → 1200 per source (3 colourings each from 400 on) raised validation accuracy."""
PALETTE_COLOURS = 48
"""Palette colours the head may pick besides white and its two per-region candidates."""
HIDDEN_UNITS = 128
"""Units in each of the head's two hidden layers."""
TRAINING_STEPS = 400
"""Full-batch Adam steps."""
HEAD_MEMBERS = 1
"""MLPs fitted (with other seeds, one palette) whose probabilities the head averages."""
