"""A real S3-compatible object store on loopback for the tests: moto_server (``make tools``).

One server per test session; each test takes a bucket of its own. Credentials and
endpoint are always explicit (``StorageSettings``), as in production.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streams.settings import StorageSettings
from streams.tools.broker import free_port

MOTO = Path(__file__).parents[1] / ".venv-tools" / "bin" / "moto_server"
_buckets = itertools.count()


@dataclass
class ObjectStore:
    endpoint: str
    process: subprocess.Popen[bytes]

    @property
    def storage(self) -> StorageSettings:
        return StorageSettings(endpoint=self.endpoint, access_key_id="testing",
                               secret_access_key="testing", allow_http=True)  # type: ignore[arg-type]  # fmt: skip

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"bs-test-{next(_buckets)}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        return name

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_object_store() -> ObjectStore:
    binary = str(MOTO) if MOTO.exists() else shutil.which("moto_server")
    assert binary, "moto_server is missing: `make tools` installs it into .venv-tools"
    port = free_port()
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return ObjectStore(endpoint, process)
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
