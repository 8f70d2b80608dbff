"""``python -m edgesmith``: the command line (also under ``torchrun``)."""

from edgesmith.cli import main

if __name__ == "__main__":
    main()
