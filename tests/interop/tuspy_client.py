"""Drives tuspy (the tus project's Python client, unmodified) against a Ferry
server, with per-chunk SHA-1 checksums. Called by tests/it/interop.rs; prints
one JSON line of results.

    python tuspy_client.py <endpoint> <file> <chunk_size>

The upload stops half-way, as if the process died, and a new uploader
resumes it from its URL alone.
"""

import json
import os
import sys

from tusclient import client


def main() -> None:
    endpoint, path, chunk_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    size = os.path.getsize(path)
    tus = client.TusClient(endpoint)
    metadata = {"filename": os.path.basename(path)}

    first = tus.uploader(path, chunk_size=chunk_size, metadata=metadata, upload_checksum=True)
    first.upload(stop_at=size // 2)
    url = first.url

    second = tus.uploader(path, url=url, chunk_size=chunk_size, upload_checksum=True)
    resumed_from = second.offset
    second.upload()
    print(json.dumps({"url": url, "resumedFrom": resumed_from, "offset": second.offset}))


if __name__ == "__main__":
    main()
