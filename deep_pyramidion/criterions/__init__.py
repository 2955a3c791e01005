"""Criteria of the plugin; importing this package registers them with fairseq."""
from deep_pyramidion.criterions import reconstruction  # noqa: F401  (registers the criterion)
