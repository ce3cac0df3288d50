"""Getting kernels: the catalog, resolving --kernel values, the cache, fetching
Debian's packages, kernel sources, configuring and building, UAPI headers."""
