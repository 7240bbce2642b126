//! Runs one subcommand: load, compose, render, and (for `render`) write.

mod build;
mod deploy;
mod docs;
mod launch;
mod out;
mod release;

use crate::cli::{Cli, Command};
use crate::compose::{self, Composition};
use crate::config::ImageInput;
use crate::error::Error;
use crate::model::{self, LayerSource};
use crate::output::Output;
use crate::render::{self, Rendered};
use std::path::PathBuf;
use std::time::Duration;

use crate::build::{BuildError, DataDiskChoice, VerifyOptions};
use crate::cli::QemuArgs;
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

fn qemu_config(vm: &QemuArgs) -> QemuConfig {
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
        Command::Check { input, .. } => {
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
            gate,
            vm,
            openstack,
            publish,
            publish_args,
            cloud,
        } => build::build(
            cli,
            &build::BuildCommand {
                input,
                builder: *builder,
                artifacts,
                force: *force,
                compression: *compression,
                gate,
                vm,
                openstack,
                publish: *publish,
                publish_args,
                cloud,
            },
        ),
        Command::Verify {
            artifact,
            data_disk,
            no_data_disk,
            gate,
            vm,
        } => {
            let opts = VerifyOptions {
                qemu: qemu_config(vm),
                timeout: Duration::from_secs(gate.timeout),
                allow_degraded: gate.allow_degraded,
                data_disk: match (data_disk, no_data_disk) {
                    (_, true) => DataDiskChoice::None,
                    (Some(p), false) => DataDiskChoice::File(p.clone()),
                    (None, false) => DataDiskChoice::Scratch,
                },
            };
            let progress = Progress::new("verify", false);
            let report = cancellable(crate::build::verify(artifact, &opts, &progress))?;
            Ok(Output::Verified(report))
        }
        Command::Gc {
            dry_run,
            older_than,
            ignore_leases,
            cloud,
        } => build::gc(cli, *dry_run, older_than, *ignore_leases, cloud),
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
        Command::Deploy(args) => deploy::deploy(cli, args),
        Command::Launch(args) => launch::launch(cli, args),
        Command::Rollback {
            name,
            to,
            secrets,
            poll,
            cloud,
        } => deploy::rollback(cli, name, to.as_deref(), secrets.as_deref(), *poll, cloud),
        Command::Completions { shell } => Ok(docs::completions(*shell)),
        Command::Man { subcommand, out } => docs::man(subcommand.as_deref(), out.as_deref()),
        Command::Status { name, cloud } => deploy::status(name, cloud),
        Command::Destroy {
            name,
            release_address,
            delete_dns,
            cloud,
        } => deploy::destroy(name, *release_address, *delete_dns, cloud),
        Command::Render { input, out, .. } => {
            let input = ImageInput::from_args(input, cli.layers.as_deref())?;
            let (comp, rendered) = build(&input)?;
            out::write_out(out, &rendered)?;
            Ok(Output::Rendered {
                comp,
                rendered,
                out: out.clone(),
            })
        }
    }
}

/// What a builder bakes: rendered without secrets, which the bake can
/// never see; a secret required at boot is then not an error yet.
fn render_for_build(input: &ImageInput) -> Result<(Composition, Rendered), Error> {
    let mut overrides = input.overrides.clone();
    overrides.secrets.clear();
    overrides.defer_required_secrets = true;
    build(&ImageInput {
        image: input.image.clone(),
        layers_dir: input.layers_dir.clone(),
        overrides,
    })
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
    for w in &comp.warnings {
        eprintln!("warning: {w}");
    }
    let mut rendered =
        render::render(&comp, &digest).map_err(|source| Error::Render { image, source })?;
    rendered.manifest.sets = input.overrides.set.iter().cloned().collect();
    tracing::info!(
        bake_bytes = rendered.bake.bytes.len(),
        boot_bytes = rendered.boot.bytes.len(),
        digest = %digest,
        "rendered"
    );
    Ok((comp, rendered))
}
