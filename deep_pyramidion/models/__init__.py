"""Import paths of the package before it was reshaped, kept working with a DeprecationWarning that
names the new place (see deep_pyramidion/models/pyramidion.py). Importing this package imports
neither fairseq nor the adapter; only using a moved name does."""
