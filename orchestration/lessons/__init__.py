"""Helpers the lessons call, so a notebook shows the SageMaker calls and not the plumbing."""
