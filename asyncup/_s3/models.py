"""botocore's data files for asyncup's own sessions: only what an S3 client reads."""

from __future__ import annotations

import json
import os
from typing import Any

import botocore.loaders

# The services whose entries an S3 client's session reads in botocore's endpoints.json: S3
# itself, and those its credential chain may make clients for (AssumeRole and web identity,
# SSO, login).
_ENDPOINT_SERVICES = ("s3", "sts", "sso", "sso-oidc", "signin")


def load_less(session: Any) -> None:
    """Keep only what an S3 client uses of botocore's legacy endpoint data, in asyncup's own
    session (a caller's own client is untouched).

    botocore's endpoints.json lists every endpoint of every AWS service (1.2 MB of JSON, 6.7
    MiB once parsed) and the session keeps it for the client's life; an S3 client reads its
    S3 entries once, when it is made (its requests are routed by S3's endpoint rule set).
    Through botocore's own extension point, the loader's ``file_loader`` (every search path,
    ``AWS_DATA_PATH`` and ~/.aws/models, still counts), only the partitions and the entries
    of ``_ENDPOINT_SERVICES`` are kept; a client of another service made from this session
    would fall back to its partition's defaults. Peak RSS with a slow server, measured: 5 MiB
    lower (benchmarks/PROFILE.md; the file is still parsed whole, and not all of the memory
    it took goes back to the system).
    """
    data_path = session.get_config_variable("data_path")  # as botocore.loaders.create_loader
    extra = [
        os.path.expanduser(os.path.expandvars(path))
        for path in (data_path or "").split(os.pathsep)
        if path
    ]
    loader = _LeanLoader(extra_search_paths=extra, file_loader=_LeanFileLoader())
    session.register_component("data_loader", loader)


class _LeanLoader(botocore.loaders.Loader):  # type: ignore[misc]
    """botocore's loader, without its check that a service it loads is among the ~430 it
    knows: that lists every service directory of every search path, once per kind of model
    (12 ms of each client's creation here, measured: benchmarks/PROFILE.md). A service
    that is not there still fails, with ``DataNotFoundError``."""

    _loading: str | None = None

    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        version = api_version or self.determine_latest_version(service_name, type_name)
        self._loading = service_name
        try:
            return super().load_service_model(service_name, type_name, version)
        finally:
            self._loading = None

    def list_available_services(self, type_name: str) -> list[str]:
        if self._loading is not None:
            return [self._loading]
        services: list[str] = super().list_available_services(type_name)
        return services


class _LeanFileLoader(botocore.loaders.JSONFileLoader):  # type: ignore[misc]
    def load_file(self, file_path: str) -> Any:
        data = super().load_file(file_path)
        if data is None or os.path.basename(file_path) != "endpoints":
            return data
        partitions = [
            {**partition, "services": _some(partition.get("services", {}))}
            for partition in data.get("partitions", [])
        ]
        # A copy of its own, so that nothing of the whole file stays referenced.
        return json.loads(json.dumps({**data, "partitions": partitions}))


def _some(services: dict[str, Any]) -> dict[str, Any]:
    return {name: services[name] for name in _ENDPOINT_SERVICES if name in services}
