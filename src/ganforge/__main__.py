"""``python -m ganforge``: the ganforge command, as torchrun launches it (``torchrun ... -m ganforge train ...``)."""

from ganforge.cli import main

main()
