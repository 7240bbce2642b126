"""FAKE VOLUME BACKEND: a test-only Cinder volume driver whose volumes are
sparse raw files, for the playground's cinder-volume. Not for production: no
export, no target, nothing a real host could attach.

The test machines have no device-mapper (LVM cannot run), no NFS in the
kernel and no NFS server, so none of Cinder's stock drivers can run there.
FakeFileVolumeDriver is a subclass of Cinder's own
cinder.volume.driver.VolumeDriver (Debian 12's 21.x, Zed) that does what a
backend does to the data with plain file operations, and nothing else; the
API, scheduler, volume manager, database, attachments and state machine
around it are stock Cinder:

- a volume is DIR/cinder/volumes/volume-<id>, a sparse raw file of the
  volume's size (create, delete, extend);
- a snapshot is a copy (sparse) of its volume's file, snapshot-<id>; a
  volume from a snapshot and a clone are copies too, grown to the new size;
- a volume from an image: the image's bytes from Glance written into the
  file, as they are (clone_image does it, so that Cinder's generic path,
  which runs qemu-img through rootwrap on a temporary download, is never
  taken); a raw image gives a volume with exactly its bytes;
- a volume uploaded to an image (copy_volume_to_image, `openstack image
  create --volume`): the file's bytes sent to Glance (raw), or converted by
  qemu-img for another disk format;
- initialize_connection returns a connection info of type `local` with the
  file's path: Nova's fake driver (nova.virt.fake.FakeDriver, the base of
  the playground's fake guest driver) stores whatever connection info it
  is given and runs no os-brick, so nothing on the "host" opens the file;
- get_volume_stats reports the capacity of the file system holding the
  volumes (thin provisioned), so that the scheduler places volumes.
"""

import os
import subprocess
import tempfile

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.volume import driver

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt("ingot_fake_volumes_dir",
               help="FAKE volume driver: where the volume and snapshot files are."),
]
CONF = cfg.CONF
CONF.register_opts(OPTS, group="backend_defaults")

GIB = 1024 ** 3
CHUNK = 4 * 1024 * 1024


def sparse_copy(source, dest, size=None):
    """Copies source to dest keeping holes (zero chunks are seeked over),
    then sizes dest to size bytes (or source's size)."""
    zero = bytes(CHUNK)
    with open(source, "rb") as src, open(dest + ".part", "wb") as out:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            if chunk == zero[:len(chunk)]:
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
        out.truncate(max(size or 0, os.path.getsize(source)))
    os.replace(dest + ".part", dest)


class FakeFileVolumeDriver(driver.VolumeDriver):
    """FAKE VOLUME BACKEND: sparse raw files under ingot_fake_volumes_dir.
    See the module's docstring."""

    VERSION = "0.1.0"
    # Not a third-party CI'd driver: Cinder would otherwise log a warning.
    SUPPORTED = True

    def __init__(self, *args, **kwargs):
        super(FakeFileVolumeDriver, self).__init__(*args, **kwargs)
        if self.configuration:
            self.configuration.append_config_values(OPTS)

    # --- paths -----------------------------------------------------------

    @property
    def _dir(self):
        return self.configuration.safe_get("ingot_fake_volumes_dir")

    def _path(self, kind, resource_id):
        return os.path.join(self._dir, "%s-%s" % (kind, resource_id))

    def local_path(self, volume):
        return self._path("volume", volume.id)

    def _snapshot_path(self, snapshot):
        return self._path("snapshot", snapshot.id)

    # --- setup and stats -------------------------------------------------

    def do_setup(self, context):
        if not self._dir:
            raise exception.VolumeDriverException(
                message="FakeFileVolumeDriver: ingot_fake_volumes_dir is not set")
        os.makedirs(self._dir, exist_ok=True)

    def check_for_setup_error(self):
        if not os.access(self._dir, os.W_OK):
            raise exception.VolumeDriverException(
                message="FakeFileVolumeDriver: %s is not writable" % self._dir)

    def _update_volume_stats(self):
        st = os.statvfs(self._dir)
        total = st.f_blocks * st.f_frsize / GIB
        free = st.f_bavail * st.f_frsize / GIB
        backend = self.configuration.safe_get("volume_backend_name") or "ingot-fake-file"
        self._stats = {
            "volume_backend_name": backend,
            "vendor_name": "ingot playground (FAKE)",
            "driver_version": self.VERSION,
            "storage_protocol": "local",
            "total_capacity_gb": round(total, 2),
            "free_capacity_gb": round(free, 2),
            "reserved_percentage": 0,
            # Sparse files: a 1 GB volume costs nothing until written; the
            # scheduler's capacity filter counts provisioned sizes against
            # total * ratio.
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "max_over_subscription_ratio": 20.0,
            "provisioned_capacity_gb": round(sum(
                os.path.getsize(os.path.join(self._dir, f))
                for f in os.listdir(self._dir) if f.startswith("volume-")) / GIB, 2),
            "multiattach": False,
        }

    # --- volumes ---------------------------------------------------------

    def create_volume(self, volume):
        path = self.local_path(volume)
        with open(path, "wb") as f:
            f.truncate(volume.size * GIB)
        LOG.info("FAKE volume %s: created %s (%d GB, sparse)", volume.id, path, volume.size)
        return {}

    def delete_volume(self, volume):
        try:
            os.unlink(self.local_path(volume))
        except FileNotFoundError:
            pass  # deleting twice, or a volume whose creation failed

    def extend_volume(self, volume, new_size):
        with open(self.local_path(volume), "r+b") as f:
            f.truncate(new_size * GIB)

    def create_cloned_volume(self, volume, src_vref):
        sparse_copy(self.local_path(src_vref), self.local_path(volume), volume.size * GIB)
        return {}

    # --- snapshots -------------------------------------------------------

    def create_snapshot(self, snapshot):
        sparse_copy(self.local_path(snapshot.volume), self._snapshot_path(snapshot))
        return {}

    def delete_snapshot(self, snapshot):
        try:
            os.unlink(self._snapshot_path(snapshot))
        except FileNotFoundError:
            pass

    def create_volume_from_snapshot(self, volume, snapshot):
        sparse_copy(self._snapshot_path(snapshot), self.local_path(volume), volume.size * GIB)
        return {}

    def revert_to_snapshot(self, context, volume, snapshot):
        sparse_copy(self._snapshot_path(snapshot), self.local_path(volume), volume.size * GIB)

    # --- images ----------------------------------------------------------

    def _fetch_image(self, context, volume, image_service, image_id):
        """The image's bytes, as they are, at the start of the volume's file
        (which keeps its size, or grows to the image's)."""
        path = self.local_path(volume)
        with open(path + ".part", "wb") as f:
            image_service.download(context, image_id, f)
            f.truncate(max(f.tell(), volume.size * GIB))
        os.replace(path + ".part", path)
        LOG.info("FAKE volume %s: image %s written into %s", volume.id, image_id, path)

    def clone_image(self, context, volume, image_location, image_meta, image_service):
        """Volume from image: the download itself (see the module's
        docstring), reported as a clone so that Cinder skips its generic
        download-convert-copy path."""
        self.create_volume(volume)
        self._fetch_image(context, volume, image_service, image_meta["id"])
        return {}, True

    def copy_image_to_volume(self, context, volume, image_service, image_id,
                             disable_sparse=False):
        self._fetch_image(context, volume, image_service, image_id)

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        path = self.local_path(volume)
        disk_format = image_meta.get("disk_format") or "raw"
        if disk_format == "raw":
            with open(path, "rb") as f:
                image_service.update(context, image_meta["id"], {}, f)
        else:
            # qemu-img as the volume service's own user: the file is ours.
            with tempfile.TemporaryDirectory(dir=self._dir) as tmp:
                out = os.path.join(tmp, "image")
                subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", disk_format,
                                path, out], check=True)
                with open(out, "rb") as f:
                    image_service.update(context, image_meta["id"], {}, f)
        LOG.info("FAKE volume %s: uploaded to image %s (%s)", volume.id, image_meta["id"],
                 disk_format)

    # --- exports and connections (nothing to export) ----------------------

    def ensure_export(self, context, volume):
        pass

    def create_export(self, context, volume, connector):
        return {}

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector, **kwargs):
        """os-brick's `local` type (a path on this host). Nova's fake driver
        keeps it and opens nothing."""
        return {
            "driver_volume_type": "local",
            "data": {"device_path": self.local_path(volume), "volume_id": volume.id,
                     "ingot_fake": True},
        }

    def terminate_connection(self, volume, connector, **kwargs):
        pass

    # --- unsupported: say so instead of half-working ------------------------

    def manage_existing(self, volume, existing_ref):
        raise NotImplementedError("FakeFileVolumeDriver does not manage existing volumes")

    def manage_existing_get_size(self, volume, existing_ref):
        raise NotImplementedError("FakeFileVolumeDriver does not manage existing volumes")

    def clear_download(self, context, volume):
        pass
