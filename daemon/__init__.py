"""genrecast.daemon: everything the long-running listener needs.

Importing this package is cheap: it never imports tensorflow (only the Keras
backend does, inside the function that loads it).
"""

__version__ = "0.1.0"
