//! Runs one subcommand: load, compose, render, and (for `render`) write.

mod release;

use crate::cli::{Cli, Command};
use crate::compose::{self, Composition};
use crate::config::ImageInput;
use crate::error::Error;
use crate::model::{self, LayerSource};
use crate::output::Output;
use crate::render::{self, Rendered};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::build::{BuildError, BuildOptions, QemuBuilder, VerifyOptions};
use crate::cli::VmArgs;
use crate::progress::Progress;
use crate::qemu::QemuConfig;

/// Runs a long operation until it ends or the user presses Ctrl-C. On
/// Ctrl-C the operation's future is dropped, so its guards clean up exactly
/// once: VMs are killed by their own pid, helper process groups are asked to
/// stop, staging folders are removed.
fn cancellable<T, E>(op: impl std::future::Future<Output = Result<T, E>>) -> Result<T, Error>
where
    Error: From<E>,
{
    runtime()?.block_on(async {
        tokio::select! {
            r = op => r.map_err(Error::from),
            _ = tokio::signal::ctrl_c() => Err(Error::Cancelled),
        }
    })
}

/// The one runtime a command runs on: current-thread, ingot's futures are
/// not `Send` and its work is I/O plus the upload's own reader thread.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Write {
            path: PathBuf::from("(tokio runtime)"),
            source,
        })
}

fn cache(cli: &Cli) -> crate::base::Cache {
    crate::base::Cache::new(
        cli.cache
            .clone()
            .unwrap_or_else(crate::base::Cache::default_root),
    )
}

fn qemu_config(vm: &VmArgs) -> QemuConfig {
    QemuConfig {
        accel: vm.accel,
        memory_mb: vm.memory,
        cpus: vm.cpus,
        cpu: vm.cpu.clone(),
        ..QemuConfig::default()
    }
}

pub fn run(cli: &Cli) -> Result<Output, Error> {
    match &cli.command {
        Command::Layers => {
            let dir = cli
                .layers
                .clone()
                .unwrap_or_else(|| PathBuf::from("layers"));
            let layers: Vec<LayerSource> = model::list_layers(&dir)?;
            Ok(Output::Layers(layers))
        }
        Command::Check { input } => {
            let input = ImageInput::from_args(input, cli.layers.as_deref())?;
            let (comp, rendered) = build(&input)?;
            Ok(Output::Checked { comp, rendered })
        }
        Command::Base { image } => {
            let layers = cli
                .layers
                .clone()
                .unwrap_or_else(|| crate::config::default_layers_dir(image));
            let loaded = model::load_image(image, &layers)?;
            let cache = cache(cli);
            let progress = Progress::new("base", false);
            let base = cancellable(async {
                cache
                    .obtain(
                        loaded.image.base.distro,
                        &loaded.image.base.source,
                        &progress,
                    )
                    .await
                    .map_err(BuildError::from)
            })?;
            Ok(Output::Base(base))
        }
        Command::Build {
            input,
            builder,
            artifacts,
            force,
            compression,
            vm,
            publish,
            publish_args,
            cloud,
        } => {
            if builder != "qemu" {
                return Err(Error::Unsupported(format!(
                    "builder `{builder}` is not available yet: use --builder qemu"
                )));
            }
            let input = ImageInput::from_args(input, cli.layers.as_deref())?;
            let opts = BuildOptions {
                artifacts: artifacts.clone(),
                cache: cache(cli),
                timeout: Duration::from_secs(vm.timeout),
                compression: *compression,
                allow_degraded: vm.allow_degraded,
                force: *force,
            };
            let qemu = QemuBuilder {
                qemu: qemu_config(vm),
            };
            let progress = Progress::new("build", false);
            // Credentials and catalog are checked before a long build, not after.
            if *publish {
                release::preflight(cloud)?;
            }
            let artifact = cancellable(crate::build::build(&qemu, &input, &opts, &progress))?;
            if !*publish {
                return Ok(Output::Built(artifact));
            }
            let published = release::publish(&artifact.dir, publish_args, cloud)?;
            Ok(Output::BuiltAndPublished {
                artifact,
                published,
            })
        }
        Command::Verify { artifact, vm } => {
            let opts = VerifyOptions {
                qemu: qemu_config(vm),
                timeout: Duration::from_secs(vm.timeout),
                allow_degraded: vm.allow_degraded,
            };
            let progress = Progress::new("verify", false);
            let report = cancellable(crate::build::verify(artifact, &opts, &progress))?;
            Ok(Output::Verified(report))
        }
        Command::Publish {
            artifact,
            publish_args,
            cloud,
        } => Ok(Output::Published(release::publish(
            artifact,
            publish_args,
            cloud,
        )?)),
        Command::Releases { image, cloud } => release::releases(image, cloud),
        Command::Promote {
            image,
            version,
            channel,
            cloud,
        } => release::promote(image, version, channel, cloud),
        Command::Prune {
            image,
            keep,
            dry_run,
            cloud,
        } => release::prune(image, *keep, *dry_run, cloud),
        Command::Render { input, out } => {
            let input = ImageInput::from_args(input, cli.layers.as_deref())?;
            let (comp, rendered) = build(&input)?;
            write_out(out, &rendered)?;
            Ok(Output::Rendered {
                comp,
                rendered,
                out: out.clone(),
            })
        }
    }
}

/// Everything up to the bytes; no side effects.
pub fn build(input: &ImageInput) -> Result<(Composition, Rendered), Error> {
    let loaded = model::load_image(&input.image, &input.layers_dir)?;
    let image = loaded.image.name.clone();
    tracing::info!(image = %image, layers = loaded.layers.len(), "loaded");
    let digest = render::input_digest(&loaded, &input.overrides);
    let comp = compose::compose(&loaded, &input.overrides).map_err(|source| Error::Compose {
        image: image.clone(),
        source: Box::new(source),
    })?;
    tracing::info!(order = ?comp.layers.iter().map(|l| &l.name).collect::<Vec<_>>(), "composed");
    let rendered =
        render::render(&comp, &digest).map_err(|source| Error::Render { image, source })?;
    tracing::info!(
        bake_bytes = rendered.bake.bytes.len(),
        boot_bytes = rendered.boot.bytes.len(),
        digest = %digest,
        "rendered"
    );
    Ok((comp, rendered))
}

/// Writes the three files so that `out` never holds a half-written one:
/// destinations are checked first, every file is written and synced under a
/// temporary name, and only then renamed into place (renames within one
/// folder do not fail half-way). On failure the temporary files are removed.
fn write_out(out: &Path, rendered: &Rendered) -> Result<(), Error> {
    let write_err = |path: &Path, source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let mut manifest = serde_json::to_vec_pretty(&rendered.manifest).expect("json");
    manifest.push(b'\n');
    let files: [(String, &[u8], u32); 3] = [
        (rendered.bake.file_name(), &rendered.bake.bytes, 0o644),
        // The boot document may hold secrets.
        (rendered.boot.file_name(), &rendered.boot.bytes, 0o600),
        ("manifest.json".into(), &manifest, 0o644),
    ];
    // A destination that is not a plain file would make its rename fail
    // after others succeeded: refuse before touching anything.
    for (name, _, _) in &files {
        let dest = out.join(name);
        if dest.exists() && !dest.is_file() {
            return Err(write_err(
                &dest,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a file",
                ),
            ));
        }
    }
    let pid = std::process::id();
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, bytes, mode) in &files {
        let tmp = out.join(format!(".{name}.tmp-{pid}"));
        let result = write_file(&tmp, bytes, *mode);
        staged.push((tmp.clone(), out.join(name)));
        if let Err(e) = result {
            remove_all(&staged);
            return Err(write_err(&tmp, e));
        }
    }
    for (tmp, dest) in &staged {
        if let Err(e) = fs::rename(tmp, dest) {
            remove_all(&staged);
            return Err(write_err(dest, e));
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn remove_all(staged: &[(PathBuf, PathBuf)]) {
    for (tmp, _) in staged {
        let _ = fs::remove_file(tmp);
    }
}
