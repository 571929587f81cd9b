"""Make a base image from a template (see dockyard.templates)."""

from __future__ import annotations

import argparse
import tempfile
import time
from types import ModuleType

from dockyard.engine.images import ImageService
from dockyard.image import reference
from dockyard.image.model import OCI_LAYER, Descriptor, new_config
from dockyard.store.images import ImageRecord


def bootstrap(service: ImageService, template: ModuleType, options: argparse.Namespace) -> ImageRecord:
    ref = reference.parse(template.reference(options))
    store = service.store
    with store.lease() as lease, tempfile.TemporaryDirectory(dir=store.root / "tmp") as workdir:
        with store.blobs.writer(on_verified=lease.claim_blob) as writer:
            template.write_layer(writer, options, workdir)
            digest = writer.commit()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(template.created(options)))
        history = [{"created": created, "created_by": f"dockyard image bootstrap {template.NAME}"}]
        config_raw = new_config([digest], template.config(options), history, created)
        return service.create_image(lease, [(Descriptor(OCI_LAYER, digest, writer.size), digest)], config_raw,
                                    [ref])
