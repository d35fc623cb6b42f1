"""Tasks and their files: the task model (model), TASKS.md (markdown), tasks.toml (toml), and reading and
writing either on disk (files)."""
