"""`hand-recon` sub-commands, one module each, each exposing ``register(subparsers)``.

``register`` adds the sub-command's parser and sets ``func`` (``args -> exit status``) as its default.
"""
