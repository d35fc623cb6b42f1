"""A tuiorch stand-in the fault tests kill -9: starts one run through RayRunner, saves its attachment as
the run state would, and streams its output into the log until killed.

    python tests/ray/driver.py CENTRAL ADDRESS TASK_ID BODY_FILE ATTACHMENT_FILE
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.ray.specs import Seen, demo_spec  # noqa: E402
from tuiorch.runners.ray.runner import RayRunner  # noqa: E402


async def main(central: Path, address: str, task_id: str, body: str, saved: Path) -> None:
    runner = RayRunner(central, address=address, commands=[sys.executable])
    seen = Seen()
    hooks = seen.hooks()
    hooks.on_started = lambda attachment: saved.write_text(json.dumps(attachment.to_state()))
    handle = await runner.start(demo_spec(central, task_id, body), hooks)
    await handle.wait()
    await asyncio.sleep(3600)  # a killed tuiorch never gets further


if __name__ == "__main__":
    central, address, task_id, body_file, saved = sys.argv[1:6]
    asyncio.run(main(Path(central), address, task_id, Path(body_file).read_text(), Path(saved)))
