"""The ``rw-tf`` command line: ``main.py`` wires one module per subcommand group."""
