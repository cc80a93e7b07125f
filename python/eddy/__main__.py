"""``python -m eddy ARGS`` runs ``eddy-driver ARGS`` (``python -m eddy --help`` lists its commands)."""

from eddy.binaries import driver_main

driver_main()
