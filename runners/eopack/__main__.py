"""``python -m eopack`` is the ``eopack`` command."""

from .commands import main

main()
