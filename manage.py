#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Run from a checkout without installing: the code lives under src/.
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    # In a checkout where nothing is configured, `make run`'s defaults: commands reach the
    # embedded PostgreSQL it started (production settings are untouched: product.local_defaults).
    from product.local_defaults import use_local_defaults_if_unconfigured

    use_local_defaults_if_unconfigured()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
