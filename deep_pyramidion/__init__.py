"""deep_pyramidion: a fairseq plugin (``--user-dir deep_pyramidion``).

Importing the package registers the ``pyramidion`` model and its architectures; like fairseq's own
plugins, this file only imports the modules whose ``@register_*`` decorators must run, plus two
process-wide fixes every user needs: fairseq checkpoints load under torch's safe loader, no
batching path drops the last partial batch, and ``--bf16`` works without a TPU.
"""
from deep_pyramidion import batching, checkpoint_safety, precision

batching.install()
checkpoint_safety.install()
precision.install()

from deep_pyramidion.models import pyramidion  # noqa: E402,F401  (registers the model)
from deep_pyramidion import criterions  # noqa: E402,F401  (registers the reconstruction criterion)
