"""Registry storage on a local filesystem.

Layout under the root:

    blobs/sha256/<hex>                                         content, stored once for all repositories
    uploads/<uuid>/{data,repo}                                 uploads in progress (see uploads.py)
    repositories/<name>/_layers/sha256/<hex>                   empty: the repository may serve this blob
    repositories/<name>/_manifests/revisions/sha256/<hex>      the manifest's media type
    repositories/<name>/_manifests/tags/<tag>                  the digest the tag points at
    repositories/<name>/_referrers/sha256/<subject hex>/<hex>  descriptor (JSON) of a manifest with that subject
    tmp/                                                       staging: every file is written here, then renamed

Blobs are content-addressed and shared, but a repository only sees the blobs it was given (uploaded or
mounted): the per-repository links. Every name, tag and digest is validated against its grammar before it
becomes part of a path. Nothing becomes visible before it is verified against its digest: blobs are hashed
while they stream in, manifests when they arrive, and both are renamed into place only after that.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dockyard.registry.names import is_digest, is_sha256, is_valid_name, is_valid_tag
from dockyard.registry.server import manifests
from dockyard.registry.server.errors import RegistryError
from dockyard.registry.server.uploads import Upload, Uploads, remove_stale_uploads


def check_name(name: str) -> str:
    if not is_valid_name(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name!r}", detail={"name": name})
    return name


def check_digest(digest: str) -> str:
    """A digest we can store: only sha256 is supported; anything else is DIGEST_INVALID (400)."""
    if not is_sha256(digest):
        why = "unsupported digest algorithm" if is_digest(digest) else "invalid digest"
        raise RegistryError("DIGEST_INVALID", f"{why} {digest!r}", detail={"digest": digest})
    return digest


@dataclass
class StoredManifest:
    raw: bytes
    media_type: str
    digest: str


@dataclass
class GCReport:
    blobs_removed: int = 0
    bytes_removed: int = 0
    blobs_kept_recent: int = 0
    manifests_removed: int = 0
    links_removed: int = 0
    uploads_removed: int = 0


class Storage:
    def __init__(self, root: Path, upload_ttl: float = 24 * 3600) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.repo_dir = root / "repositories"
        self.tmp_dir = root / "tmp"
        for d in (self.blob_dir, self.repo_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.uploads = Uploads(root / "uploads", upload_ttl)

    # --- small files, written atomically ------------------------------------------------------------------------

    def _write_file(self, path: Path, data: bytes, sync: bool = True) -> None:
        tmp = self.tmp_dir / secrets.token_hex(12)
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        path.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, path)

    # --- paths ---------------------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest)[7:]

    def _repo(self, name: str) -> Path:
        return self.repo_dir / check_name(name)

    def _link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_layers" / "sha256" / check_digest(digest)[7:]

    def _revision(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / "sha256" / check_digest(digest)[7:]

    def _tag(self, name: str, tag: str) -> Path:
        if not is_valid_tag(tag):
            raise RegistryError("TAG_INVALID", f"invalid tag {tag!r}", detail={"tag": tag})
        return self._repo(name) / "_manifests" / "tags" / tag

    def _referrers_dir(self, name: str, subject: str) -> Path:
        return self._repo(name) / "_referrers" / "sha256" / check_digest(subject)[7:]

    def repository_exists(self, name: str) -> bool:
        repo = self._repo(name)
        return (repo / "_manifests").is_dir() or (repo / "_layers").is_dir()

    # --- blobs ---------------------------------------------------------------------------------------------------

    def stat_blob(self, name: str, digest: str) -> tuple[Path, int]:
        """The file and size of a blob this repository may serve; BLOB_UNKNOWN otherwise."""
        path = self.blob_path(digest)
        if self._link(name, digest).exists():
            try:
                return path, path.stat().st_size
            except FileNotFoundError:
                pass
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})

    def has_blob(self, name: str, digest: str) -> bool:
        try:
            self.stat_blob(name, digest)
            return True
        except RegistryError:
            return False

    def link_blob(self, name: str, digest: str) -> None:
        link = self._link(name, digest)
        if not link.exists():
            self._write_file(link, b"", sync=False)

    def mount_blob(self, name: str, digest: str, source: str) -> bool:
        """Give `name` a blob that `source` has. False when the source does not have it."""
        check_name(source)
        if not self.has_blob(source, digest):
            return False
        self.link_blob(name, digest)
        return True

    def delete_blob(self, name: str, digest: str) -> None:
        """Unlink a blob from one repository; its bytes go at the next gc if nothing else needs them."""
        link = self._link(name, digest)
        try:
            link.unlink()
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest}) from None

    def commit_upload(self, upload: Upload, digest: str) -> str:
        """Make a fully received, fsynced upload a blob of its repository, if it matches `digest`."""
        check_digest(digest)
        actual = upload.digest
        if actual != digest:
            self.uploads.discard(upload)
            raise RegistryError("DIGEST_INVALID", f"upload has digest {actual}, not {digest}",
                                detail={"digest": digest})
        final = self.blob_path(digest)
        if final.exists():
            self.uploads.discard(upload)
        else:
            os.rename(upload.data_path, final)
            self.uploads.discard(upload)
        self.link_blob(upload.repo, digest)
        return digest

    def put_blob_bytes(self, name: str, data: bytes) -> str:
        """Store small content (a manifest) as a blob and link it."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            self._write_file(path, data)
        return digest

    # --- manifests -----------------------------------------------------------------------------------------------

    def resolve(self, name: str, reference: str) -> str:
        """The manifest digest a tag or digest reference names in this repository."""
        if ":" in reference:
            digest = check_digest(reference)
        else:
            try:
                digest = self._tag(name, reference).read_text().strip()
            except (FileNotFoundError, NotADirectoryError):
                raise self._manifest_unknown(name, reference) from None
        if not self._revision(name, digest).exists():
            raise self._manifest_unknown(name, reference)
        return digest

    def _manifest_unknown(self, name: str, reference: str) -> RegistryError:
        if not self.repository_exists(name):
            return RegistryError("NAME_UNKNOWN", f"repository {name!r} not known to registry",
                                 detail={"name": name})
        return RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {name}:{reference}",
                             detail={"name": name, "reference": reference})

    def get_manifest(self, name: str, reference: str) -> StoredManifest:
        digest = self.resolve(name, reference)
        media_type = self._revision(name, digest).read_text().strip()
        try:
            raw = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise self._manifest_unknown(name, reference) from None
        return StoredManifest(raw, media_type, digest)

    def put_manifest(self, name: str, reference: str, raw: bytes, content_type: str | None,
                     extra_tags: list[str] = ()) -> tuple[str, manifests.ParsedManifest]:  # type: ignore[assignment]
        """Verify and store a manifest; point the reference (if a tag) and `extra_tags` at it."""
        check_name(name)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        tags = list(extra_tags)
        if ":" in reference:
            if check_digest(reference) != digest:
                raise RegistryError("DIGEST_INVALID", f"manifest has digest {digest}, not {reference}",
                                    detail={"digest": reference})
        else:
            tags.insert(0, reference)
        for tag in tags:
            self._tag(name, tag)  # validates each tag before anything is written
        parsed = manifests.parse(raw, content_type)
        self._check_references(name, parsed)
        self.put_blob_bytes(name, raw)
        self._write_file(self._revision(name, digest), parsed.media_type.encode())
        for tag in tags:
            self._write_file(self._tag(name, tag), digest.encode())
        if parsed.subject is not None and is_sha256(parsed.subject.digest):
            entry: dict[str, Any] = {"mediaType": parsed.media_type, "digest": digest, "size": len(raw)}
            if parsed.artifact_type:
                entry["artifactType"] = parsed.artifact_type
            if parsed.annotations:
                entry["annotations"] = parsed.annotations
            self._write_file(self._referrers_dir(name, parsed.subject.digest) / digest[7:],
                             json.dumps(entry).encode())
        return digest, parsed

    def _check_references(self, name: str, parsed: manifests.ParsedManifest) -> None:
        missing: list[RegistryError] = []
        for blob in parsed.blobs:
            if not is_sha256(blob.digest):
                raise RegistryError("DIGEST_INVALID", f"unsupported digest {blob.digest!r} in manifest",
                                    detail={"digest": blob.digest})
            try:
                _, size = self.stat_blob(name, blob.digest)
            except RegistryError:
                if not parsed.may_be_missing(blob):
                    missing.append(RegistryError("MANIFEST_BLOB_UNKNOWN", f"blob unknown: {blob.digest}",
                                                 detail={"digest": blob.digest}))
                continue
            if size != blob.size:
                raise RegistryError("MANIFEST_INVALID", f"blob {blob.digest} has {size} bytes, the manifest "
                                    f"says {blob.size}", detail={"digest": blob.digest})
        for child in parsed.children:
            if not is_sha256(child.digest) or not self._revision(name, child.digest).exists():
                missing.append(RegistryError("MANIFEST_BLOB_UNKNOWN", f"manifest unknown: {child.digest}",
                                             detail={"digest": child.digest}))
        if missing:
            raise MultipleErrors(missing)

    def delete_manifest(self, name: str, reference: str) -> None:
        if ":" not in reference:  # a tag: only the tag goes
            try:
                self._tag(name, reference).unlink()
            except (FileNotFoundError, NotADirectoryError):
                raise self._manifest_unknown(name, reference) from None
            return
        stored = self.get_manifest(name, reference)
        for tag, digest in self._tags_with_targets(name):
            if digest == stored.digest:
                self._tag(name, tag).unlink(missing_ok=True)
        self._revision(name, stored.digest).unlink()
        self._forget_referrer(name, stored)

    def _forget_referrer(self, name: str, stored: StoredManifest) -> None:
        try:
            parsed = manifests.parse(stored.raw, stored.media_type)
        except RegistryError:
            return
        if parsed.subject is not None and is_sha256(parsed.subject.digest):
            (self._referrers_dir(name, parsed.subject.digest) / stored.digest[7:]).unlink(missing_ok=True)

    # --- listings ------------------------------------------------------------------------------------------------

    def tags(self, name: str) -> list[str]:
        if not self.repository_exists(name):
            raise RegistryError("NAME_UNKNOWN", f"repository {name!r} not known to registry",
                                detail={"name": name})
        try:
            return sorted(e.name for e in os.scandir(self._repo(name) / "_manifests" / "tags"))
        except FileNotFoundError:
            return []

    def _tags_with_targets(self, name: str) -> Iterator[tuple[str, str]]:
        tag_dir = self._repo(name) / "_manifests" / "tags"
        try:
            entries = list(os.scandir(tag_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                yield entry.name, Path(entry.path).read_text().strip()
            except FileNotFoundError:
                continue

    def repositories(self) -> list[str]:
        """Every repository name, sorted. Walks the tree without recursion; skips '_' metadata dirs."""
        found: list[str] = []
        stack = [""]
        while stack:
            prefix = stack.pop()
            try:
                entries = list(os.scandir(self.repo_dir / prefix if prefix else self.repo_dir))
            except (FileNotFoundError, NotADirectoryError):
                continue
            names = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
            if prefix and ("_manifests" in names or "_layers" in names):
                found.append(prefix)
            for child in names:
                if not child.startswith("_"):
                    stack.append(f"{prefix}/{child}" if prefix else child)
        return sorted(found)

    def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        check_name(name)
        directory = self._referrers_dir(name, subject)
        result = []
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            if not self._revision(name, "sha256:" + entry.name).exists():
                continue
            try:
                descriptor = json.loads(Path(entry.path).read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                result.append(descriptor)
        return result

    # --- garbage collection --------------------------------------------------------------------------------------

    def collect_garbage(self, grace: float = 600.0, delete_untagged: bool = False,
                        dry_run: bool = False) -> GCReport:
        """Remove blobs that no manifest references.

        A blob younger than `grace` seconds survives even when unreferenced: it may belong to a push that
        has uploaded its layers and not yet its manifest. With `delete_untagged`, manifests that no tag
        reaches (directly, through an index, or as a referrer of one that is reached) go first.
        """
        report = GCReport()
        marked: set[str] = set()
        for name in self.repositories():
            revisions = self._revisions(name)
            if delete_untagged:
                keep = self._reachable(name, revisions)
                for digest in set(revisions) - keep:
                    report.manifests_removed += 1
                    if not dry_run:
                        self.delete_manifest(name, digest)
                    del revisions[digest]
            for digest, parsed in revisions.items():
                marked.add(digest)
                if parsed is not None:
                    marked.update(b.digest for b in parsed.blobs)
            for link in self._links(name):
                if link not in marked and not self.blob_path(link).exists():
                    report.links_removed += 1
                    if not dry_run:
                        self._link(name, link).unlink(missing_ok=True)
        now = time.time()
        for entry in list(os.scandir(self.blob_dir)):
            digest = "sha256:" + entry.name
            if digest in marked or not is_sha256(digest):
                continue
            st = entry.stat(follow_symlinks=False)
            if now - st.st_mtime < grace:
                report.blobs_kept_recent += 1
                continue
            report.blobs_removed += 1
            report.bytes_removed += st.st_size
            if not dry_run:
                os.unlink(entry.path)
        if not dry_run:
            # Links to blobs just removed are dangling now; drop them so HEAD answers 404 at once.
            for name in self.repositories():
                for link in self._links(name):
                    if not self.blob_path(link).exists():
                        self._link(name, link).unlink(missing_ok=True)
                        report.links_removed += 1
            report.uploads_removed = remove_stale_uploads(self.uploads.root, self.uploads.ttl)
        return report

    def _revisions(self, name: str) -> dict[str, manifests.ParsedManifest | None]:
        result: dict[str, manifests.ParsedManifest | None] = {}
        directory = self._repo(name) / "_manifests" / "revisions" / "sha256"
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return result
        for entry in entries:
            digest = "sha256:" + entry.name
            if not is_sha256(digest):
                continue
            try:
                media_type = Path(entry.path).read_text().strip()
                result[digest] = manifests.parse(self.blob_path(digest).read_bytes(), media_type)
            except (FileNotFoundError, RegistryError):
                result[digest] = None
        return result

    def _reachable(self, name: str, revisions: dict[str, manifests.ParsedManifest | None]) -> set[str]:
        reached = {d for _, d in self._tags_with_targets(name) if d in revisions}
        by_subject: dict[str, list[str]] = {}
        for digest, parsed in revisions.items():
            if parsed is not None and parsed.subject is not None:
                by_subject.setdefault(parsed.subject.digest, []).append(digest)
        todo = list(reached)
        while todo:
            digest = todo.pop()
            parsed = revisions.get(digest)
            nxt = [c.digest for c in parsed.children] if parsed is not None else []
            nxt += by_subject.get(digest, [])
            for d in nxt:
                if d in revisions and d not in reached:
                    reached.add(d)
                    todo.append(d)
        return reached

    def _links(self, name: str) -> list[str]:
        try:
            return ["sha256:" + e.name for e in os.scandir(self._repo(name) / "_layers" / "sha256")]
        except FileNotFoundError:
            return []


class MultipleErrors(RegistryError):
    """Several errors answered in one body (a manifest naming several missing blobs)."""

    def __init__(self, errors: list[RegistryError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.detail)
        self.errors = errors
