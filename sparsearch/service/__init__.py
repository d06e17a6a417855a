"""The HTTP service: named collections, durable writes, search (``sparsearch serve``)."""
