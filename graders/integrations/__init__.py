"""Adapters that make a grader the reward of an RL framework (OpenRLHF today), over one shared core (`_common`)."""
