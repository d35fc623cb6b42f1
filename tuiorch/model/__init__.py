"""Pure run model: no I/O, no asyncio, nothing of git or Textual."""
