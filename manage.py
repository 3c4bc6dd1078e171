#!/usr/bin/env python
"""Django's command-line utility for the DSAR workflow system."""
import os
import sys


def main() -> None:
    # `systems` reaches only the systems: it runs without the product's database, broker or secret.
    systems = sys.argv[1:2] == ["systems"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings_systems" if systems else "dsar.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
