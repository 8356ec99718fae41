"""GMF, MLP and NeuMF models, their losses, metrics and the fast training loop."""
