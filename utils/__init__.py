"""Helpers of the starter files (scripts/): storage, logging, formats, envs. Edit them freely."""
