"""Other libraries, run at torch_rl's settings for comparison (optional: pip install -e ".[peers]")."""
