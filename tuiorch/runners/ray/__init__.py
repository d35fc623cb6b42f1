"""Agents on a Ray cluster; the merge stays in the tuiorch process.

The modules that run on a node (nodegit, keeper, actor) need only the standard library, git, Ray and
tuiorch's agent supervisor; the central side (shipping, runner) owns the central repository.
"""
