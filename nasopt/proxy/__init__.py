"""The benchmark-construction method: training proxies (how well a cheap training scheme ranks architectures
like an expensive reference one) -- :mod:`.analyze` compares two schemes' results."""
