"""The starter files: train, evaluate, visualize, plot, export (run as ``python -m scripts.NAME``)."""

import sys

# While ``python -m scripts.NAME`` locates its module, sys.argv[0] is "-m" (documented by Python): only then does
# Ctrl-C or SIGTERM during start-up end the program with one line (importing scripts in a notebook changes nothing).
if sys.argv[:1] == ["-m"]:
    from utils.interrupts import handle_interrupts_as_program

    handle_interrupts_as_program()
