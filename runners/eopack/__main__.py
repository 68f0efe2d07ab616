"""``python -m eopack`` is the ``eopack`` command."""

from .cli import main

main()
