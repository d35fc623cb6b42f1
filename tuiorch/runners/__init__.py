"""Where agents run: the runner seam (`base`) and its implementations."""
