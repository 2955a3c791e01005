"""deep_pyramidion: a fairseq plugin (``--user-dir deep_pyramidion``).

Importing the package registers the ``pyramidion`` model and its architectures; like fairseq's own
plugins, this file only imports the modules whose ``@register_*`` decorators must run.
"""
