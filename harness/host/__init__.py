"""Code that runs on the machine where pytest starts (never in a guest)."""
