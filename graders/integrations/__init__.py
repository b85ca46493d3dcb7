"""Rewards for RL trainers from one grader config: TRL (`trl`), verl (`verl`), OpenRLHF (`openrlhf`) and Ray Data
(`ray`), over one shared core (`_common`); `graders export` writes the file a trainer's config points at."""
