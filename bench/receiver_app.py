"""The fan-out bench's receiver: ``tests/receiver.py`` (a raw ASGI app on uvicorn, uvloop +
httptools, one worker, 127.0.0.1 only, one JSON line per POST in an append-only log).

    python bench/receiver_app.py --log /tmp/received.jsonl [--port 0] [--delay 0]

Prints ``PORT <n>`` first. ``bench_fanout.py`` starts it through ``tests.receiver.start_receiver``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.receiver import app, main, start_receiver  # noqa: E402

__all__ = ["app", "main", "start_receiver"]

if __name__ == "__main__":
    main()
