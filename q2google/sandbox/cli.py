"""``q2google sandbox serve``: run the emulators in the foreground for another terminal to use."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from q2google.errors import ConfigError
from q2google.files import write_private_file
from q2google.sandbox.faults import FaultConfig
from q2google.sandbox.library import SandboxLibrary
from q2google.sandbox.server import Sandbox


def serve(
    *, port: int, faults: str, library: str, env_file: Path | None, token_file: Path | None
) -> None:
    """Serve until SIGINT or SIGTERM; print (and write) the environment to use the sandbox.

    Raises:
        ConfigError: A fault or library spec cannot be read.
    """
    try:
        fault_config = FaultConfig.parse(faults)
        sandbox_library = SandboxLibrary.from_spec(library)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    asyncio.run(_serve(Sandbox(sandbox_library, fault_config, port=port), env_file, token_file))


async def _serve(sandbox: Sandbox, env_file: Path | None, token_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    with tempfile.TemporaryDirectory(prefix="q2google-sandbox-") as scratch:
        try:
            await sandbox.start()
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {sandbox.host}:{sandbox.port}: {error.strerror or error}"
            ) from None
        try:
            target = token_file or Path(scratch) / "google-token.json"
            try:
                path = sandbox.write_token_file(target)
                lines = sandbox.export_lines(path)
                if env_file is not None:
                    write_private_file(env_file, lines)
            except OSError as error:
                where = error.filename or env_file or target
                raise ConfigError(f"cannot write {where}: {error.strerror or error}") from None
            sys.stdout.write(lines)
            sys.stdout.write(
                f"# q2google sandbox on {sandbox.url}: {len(sandbox.library.media)} media, "
                f"{len(sandbox.library.deliverables())} files, "
                f"{sandbox.library.total_bytes / 1024**2:.1f} MiB. Ctrl-C stops it.\n"
            )
            sys.stdout.flush()
            await stop.wait()
        finally:
            await sandbox.stop()
    print("# q2google sandbox stopped", file=sys.stderr)
