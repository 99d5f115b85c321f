"""A sync run configured only from the environment, for tests that kill it: ``python -m``."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

from q2google.config import get_settings
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync


async def main() -> None:
    settings = get_settings()
    token = os.environ["GP_ACCESS_TOKEN"]
    async with (
        GoProCloudClient.from_settings(settings, access_token=token) as gopro,
        GooglePhotosClient.from_settings(settings) as photos,
    ):
        sync = GoProToPhotosSync(gopro, photos, JsonFileBackend(settings.state_dir), settings)
        await sync.sync_date_range(
            datetime(2023, 1, 1, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
            session_id=os.environ.get("SESSION", "killed"),
            album_title="GoPro",
        )


if __name__ == "__main__":
    asyncio.run(main())
