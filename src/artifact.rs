//! An artifact folder, `artifacts/<image>/<version>-<digest12>/`, as the
//! QEMU builder writes it and `verify` and `publish` read it:
//! `manifest.json` with its build record, the golden image file it names,
//! and the two user-data documents. [`Artifact::load`] checks that the
//! folder is whole before any stage uses it.

use crate::manifest::{BuildRecord, ImageFile, Manifest, FILE_NAME};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{}: has no `build` section: this is a `render` output, not a built artifact", path.display())]
    NotBuilt { path: PathBuf },
    #[error("{}: names no local image file: the {builder} builder's image is in Glance ({glance})", path.display())]
    NoFile {
        path: PathBuf,
        builder: &'static str,
        glance: String,
    },
    #[error("{}: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
}

impl Artifact {
    /// Reads an artifact folder (or its `manifest.json`) and checks that the
    /// image file is there with the size the manifest recorded.
    pub fn load(path: &Path) -> Result<Artifact, ArtifactError> {
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        };
        let manifest_path = dir.join(FILE_NAME);
        let manifest = Manifest::load(&manifest_path)?;
        let artifact = Artifact { dir, manifest };
        let file = artifact.file()?;
        let image_file = artifact.dir.join(&file.file);
        let on_disk = std::fs::metadata(&image_file).map_err(|e| ArtifactError::Damaged {
            path: image_file.clone(),
            message: e.to_string(),
        })?;
        if on_disk.len() != file.bytes {
            return Err(ArtifactError::Damaged {
                path: image_file,
                message: format!(
                    "is {} bytes, the manifest says {}: the artifact is damaged, build it again",
                    on_disk.len(),
                    file.bytes
                ),
            });
        }
        Ok(artifact)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The build record; `load` made sure there is one.
    pub fn build(&self) -> Result<&BuildRecord, ArtifactError> {
        self.manifest
            .build
            .as_ref()
            .ok_or_else(|| ArtifactError::NotBuilt {
                path: self.manifest_path(),
            })
    }

    /// The local golden image's record.
    pub fn file(&self) -> Result<&ImageFile, ArtifactError> {
        let build = self.build()?;
        build.image.as_ref().ok_or_else(|| ArtifactError::NoFile {
            path: self.manifest_path(),
            builder: build.builder.name(),
            glance: build
                .glance
                .as_ref()
                .map(|g| g.id.clone())
                .unwrap_or_else(|| "unknown id".into()),
        })
    }

    /// The path of the local golden image.
    pub fn image_path(&self) -> Result<PathBuf, ArtifactError> {
        Ok(self.dir.join(&self.file()?.file))
    }
}

/// The virtual size of a qcow2 file from its header (bytes 24..32, big
/// endian), so that `min_disk` is right without running qemu-img.
pub fn qcow2_virtual_size(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut header = [0u8; 32];
    let mut f = std::fs::File::open(path)?;
    match f.read_exact(&mut header) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    if &header[..4] != b"QFI\xfb" {
        return Ok(None);
    }
    Ok(Some(u64::from_be_bytes(
        header[24..32].try_into().expect("8 bytes"),
    )))
}
