"""MovieLens in, validated leave-one-out splits out: the course's processing stage."""
