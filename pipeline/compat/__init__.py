"""Roboflow compatibility: the workflow specifications we run and Roboflow's option names."""
