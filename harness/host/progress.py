"""Progress: how long host work (fetching, building) says what it is doing, one line a call.

pytest passes a function that writes to its terminal; the CLI passes print.
"""
from typing import Callable

Progress = Callable[[str], None]
