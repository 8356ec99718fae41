"""Loading a trained model artifact and turning it into top-k recommendations."""
