"""Code that runs inside a guest VM (or on the host with --kernel host)."""
