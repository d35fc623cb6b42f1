"""The orchestrator's rooms: each holds one part of running the pool and reaches the rest only through
`Hub`, the orchestrator's narrow surface (its run state, the one writer of a task's status, the event
sink, the save). The stages in `tuiorch.steps` return outcomes; these rooms apply them to the run.
"""
