"""Method code, one module per post: the idea apart from the experiment."""
