"""Collectors: the envs of a phase's tasks and a policy put transitions into replay — in process
(`sequential`), in a child process beside the learner (`child`), or on Ray actors
(`ray_actors`); `choice` picks one from the config."""
