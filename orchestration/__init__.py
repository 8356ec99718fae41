"""Host-side glue: runs the course stages one after the other (the main job)."""
