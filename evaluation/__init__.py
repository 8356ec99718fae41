"""The evaluation stage (lesson 06): baselines and statistics for comparing models offline."""
