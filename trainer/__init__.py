"""genrecast.trainer: offline work that turns audio (or a feature table) into a model bundle.

It imports the daemon's feature code and never has its own; it needs
tensorflow (``pip install 'genrecast[train]'``), imported inside the
functions that use it.
"""
