"""Deleting tags on ghcr.io through GitHub's packages REST API, which ghcr.io needs instead of the OCI delete API.

A container package `ghcr.io/OWNER/NAME` (NAME may hold slashes) has versions, one per manifest, each listing
its tags; deleting a version removes the manifest and its tags. The owner is an organization or a user: the
org endpoints are tried first and a 404 there switches to the /users form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from mlpipe.github.client import GitHubAPI, GitHubAPIError

PER_PAGE = 100


class GhcrPackages:
    def __init__(self, api: GitHubAPI, owner: str, package: str) -> None:
        self.api = api
        self.owner, self.package = owner, package
        self._base: str | None = None

    @staticmethod
    def for_repo(api: GitHubAPI, repo: str) -> GhcrPackages:
        """`OWNER/NAME` as in `oci://ghcr.io/OWNER/NAME`."""
        owner, _, package = repo.partition("/")
        if not package:
            raise ValueError(f"a ghcr.io repository is OWNER/NAME, not {repo!r}")
        return GhcrPackages(api, owner, package)

    def _path(self, kind: str) -> str:
        return f"/{kind}/{quote(self.owner, safe='')}/packages/container/{quote(self.package, safe='')}"

    def versions(self) -> Iterator[dict[str, Any]]:
        for page in range(1, 10_000):
            items = self._list(page)
            yield from items
            if len(items) < PER_PAGE:
                return

    def _list(self, page: int) -> list[dict[str, Any]]:
        query = f"/versions?per_page={PER_PAGE}&page={page}"
        if self._base is None:
            try:
                got = self.api.request("GET", self._path("orgs") + query)
                self._base = self._path("orgs")
            except GitHubAPIError as error:
                if error.status != 404:
                    raise
                self._base = self._path("users")
                got = self.api.request("GET", self._base + query)
        else:
            got = self.api.request("GET", self._base + query)
        items = got.get("items", [])
        return [v for v in items if isinstance(v, dict)]

    def delete_tags(self, tags: Iterable[str]) -> list[str]:
        """Delete the versions carrying these tags; a version that also carries another tag is kept.

        Returns the tags deleted.
        """
        doomed = set(tags)
        deleted: list[str] = []
        for version in list(self.versions()):
            carried = set(((version.get("metadata") or {}).get("container") or {}).get("tags") or [])
            if not carried or not carried <= doomed:
                continue
            self.api.request("DELETE", f"{self._base}/versions/{int(version['id'])}")
            deleted.extend(sorted(carried))
        return deleted
