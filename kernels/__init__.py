"""bpfvm's kernel catalog (catalog.toml) and Kconfig fragments (fragments/), as package data."""
