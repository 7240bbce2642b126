//! `ingot build` and `ingot gc`: render every image, then hand what was
//! rendered to the chosen builder. QEMU bakes one image after another on
//! this machine; the cloud builder checks everything first (preflight),
//! then runs `--jobs` builds at once, each in its own server, and reports
//! each one.

use super::release::session;
use super::{cache, cancellable, qemu_config, render_for_build, runtime};
use crate::build::openstack::preflight::{self, Demand, Problem};
use crate::build::openstack::{
    self, gc, resolve_base, Cancel, Job, OpenStackBuilder, OpenStackOptions, Released,
};
use crate::build::{BuildError, Built, QemuBuilder, QemuOptions};
use crate::cli::{
    BuildInputs, BuilderArg, Cli, CloudArgs, GateArgs, OpenStackArgs, PublishArgs, QemuArgs,
};
use crate::cloud::compute::{ComputeService, Nova};
use crate::cloud::image::Glance;
use crate::cloud::network::{NetworkService, Neutron};
use crate::cloud::Session;
use crate::config::ImageInput;
use crate::error::Error;
use crate::output::Output;
use crate::progress::Progress;
use crate::render::Rendered;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

pub struct BuildCommand<'a> {
    pub input: &'a BuildInputs,
    pub builder: BuilderArg,
    pub artifacts: &'a Path,
    pub force: bool,
    pub compression: crate::qemu::Compression,
    pub gate: &'a GateArgs,
    pub vm: &'a QemuArgs,
    pub openstack: &'a OpenStackArgs,
    pub publish: bool,
    pub publish_args: &'a PublishArgs,
    pub cloud: &'a CloudArgs,
}

/// `--state`, else `$INGOT_STATE`, else `$XDG_STATE_HOME/ingot`, else
/// `~/.local/state/ingot`.
pub fn state_dir(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.state {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("INGOT_STATE") {
        return p.into();
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(p).join("ingot");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".local/state/ingot")
}

/// Renders every image first: an input error in any of them stops the
/// command before anything is built.
fn render_all(cli: &Cli, input: &BuildInputs) -> Result<Vec<Rendered>, Error> {
    let mut out = Vec::with_capacity(input.images.len());
    for image in &input.images {
        let input = ImageInput::new(
            image,
            &input.set,
            input.secrets.as_deref(),
            cli.layers.as_deref(),
        )?;
        out.push(render_for_build(&input)?.1);
    }
    Ok(out)
}

pub fn build(cli: &Cli, cmd: &BuildCommand<'_>) -> Result<Output, Error> {
    match cmd.builder {
        BuilderArg::Qemu => qemu(cli, cmd),
        BuilderArg::Openstack => cloud(cli, cmd),
    }
}

fn qemu(cli: &Cli, cmd: &BuildCommand<'_>) -> Result<Output, Error> {
    if cmd.openstack.jobs > 1 {
        return Err(Error::Unsupported(
            "--jobs: the qemu builder bakes one image at a time on this machine; parallel builds run in the cloud (--builder openstack)".into(),
        ));
    }
    let opts = QemuOptions {
        artifacts: cmd.artifacts.to_path_buf(),
        cache: cache(cli),
        timeout: Duration::from_secs(cmd.gate.timeout),
        compression: cmd.compression,
        allow_degraded: cmd.gate.allow_degraded,
        force: cmd.force,
    };
    let qemu = QemuBuilder {
        qemu: qemu_config(cmd.vm),
    };
    let rendered = render_all(cli, cmd.input)?;
    // Credentials and catalog are checked before a long build, not after.
    if cmd.publish {
        super::release::preflight(cmd.cloud)?;
    }
    let mut built: Vec<Built> = Vec::new();
    for r in &rendered {
        let progress = Progress::new("build", false);
        built.push(cancellable(qemu.build(r, &opts, &progress))?);
    }
    if !cmd.publish {
        return Ok(match built.len() {
            1 => Output::Built(built.pop().expect("one")),
            _ => Output::BuiltMany(built),
        });
    }
    let mut published = Vec::new();
    for b in built {
        let p = super::release::publish(&b.artifact.dir, cmd.publish_args, cmd.cloud)?;
        published.push((b, p));
    }
    Ok(match published.len() {
        1 => {
            let (artifact, published) = published.pop().expect("one");
            Output::BuiltAndPublished {
                artifact,
                published,
            }
        }
        _ => Output::BuiltAndPublishedMany(published),
    })
}

/// Keystone URL and project: what a journal is about.
async fn cloud_identity(session: &Session) -> Result<String, Error> {
    Ok(format!(
        "{} {}",
        session.auth_url(),
        session.project_id().await?.unwrap_or_default()
    ))
}

fn cloud(cli: &Cli, cmd: &BuildCommand<'_>) -> Result<Output, Error> {
    if cmd.publish {
        return Err(Error::Unsupported(
            "--publish: the openstack builder's images are releases in Glance already".into(),
        ));
    }
    if cmd.openstack.jobs == 0 {
        return Err(Error::Unsupported(
            "--jobs 0: at least one build runs".into(),
        ));
    }
    let rendered = render_all(cli, cmd.input)?;
    let session = session(cmd.cloud)?;
    let cache = cache(cli);
    let state = state_dir(cli);
    runtime()?.block_on(async {
        // Ctrl-C from here on cancels every build, each of which cleans up
        // what it created; installed before the first request.
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        let watcher = async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = cancel_tx.send(true);
            }
            std::future::pending::<()>().await
        };
        let work = async {
            let progress = Progress::new("build", false);
            let glance = Glance::from_session(&session).await?;
            let nova = Nova::from_session(&session).await?;
            let neutron = Neutron::from_session(&session).await?;
            let owner = session.project_id().await?;
            let opts = OpenStackOptions {
                timeout: Duration::from_secs(cmd.gate.timeout),
                allow_degraded: cmd.gate.allow_degraded,
                poll: Duration::from_secs(cmd.openstack.poll.max(1)),
                visibility: cmd.publish_args.visibility.clone(),
                owner: owner.clone(),
                state: state.clone(),
                cloud: cloud_identity(&session).await?,
                snapshot_timeout: Duration::from_secs(cmd.gate.timeout),
                force: cmd.force,
            };

            // Already released: nothing to do for those.
            let mut results: Vec<(String, Result<Released, BuildError>)> = Vec::new();
            let mut todo: Vec<Rendered> = Vec::new();
            for r in rendered {
                let found = if cmd.force {
                    None
                } else {
                    openstack::released(&glance, &r.manifest, owner.as_deref()).await?
                };
                match found {
                    Some(image) => {
                        progress.say(&format!(
                            "already released: {} {} is image {} ({}); --force builds again",
                            r.manifest.image.name,
                            r.manifest.image.version,
                            image.id,
                            image.name.as_deref().unwrap_or("")
                        ));
                        results.push((
                            r.manifest.image.name.clone(),
                            Ok(Released {
                                image,
                                manifest: r.manifest.clone(),
                                reused: true,
                                cleanup: Default::default(),
                            }),
                        ));
                    }
                    None => todo.push(r),
                }
            }
            if todo.is_empty() {
                return Ok::<_, Error>(results);
            }

            // The preflight: every problem of every image, nothing created.
            let mut problems: Vec<Problem> = Vec::new();
            let mut jobs: Vec<Job> = Vec::new();
            let mut demands: Vec<Demand> = Vec::new();
            for r in todo {
                match resolve_base(&glance, &r.manifest, &cache, &progress).await? {
                    Ok(base) => {
                        demands.push(Demand {
                            image: r.manifest.image.name.clone(),
                            min_ram_mb: crate::release::properties::min_ram_mb(&r.manifest)
                                .unwrap_or(crate::release::properties::DEFAULT_MIN_RAM_MB),
                            base_min_disk_gb: base.min_disk_gb,
                            base_virtual_size: base.virtual_size,
                        });
                        jobs.push(Job { rendered: r, base });
                    }
                    Err(p) => problems.push(Problem::Base {
                        image: r.manifest.image.name.clone(),
                        message: p.0,
                    }),
                }
            }
            let flavors = nova.flavors().await?;
            let networks = neutron.networks(&[]).await?;
            let limits = nova.limits().await?;
            let choice = match preflight::check(
                cmd.openstack.flavor.as_deref(),
                cmd.openstack.network.as_deref(),
                cmd.openstack.jobs,
                &demands,
                &flavors,
                &networks,
                &limits,
            ) {
                Ok(c) if problems.is_empty() => c,
                Ok(_) => return Err(BuildError::Preflight { problems }.into()),
                Err(mut more) => {
                    problems.append(&mut more);
                    return Err(BuildError::Preflight { problems }.into());
                }
            };
            progress.say(&format!(
                "preflight passed: {} build(s), {} at once, flavor {}, network {}",
                jobs.len(),
                cmd.openstack.jobs.min(jobs.len()),
                choice.flavor.name,
                choice.network.name
            ));

            // Local bases go to Glance once, before the builds that need them.
            for i in 0..jobs.len() {
                if jobs[i].base.upload.is_none() {
                    continue;
                }
                let same = jobs[..i]
                    .iter()
                    .find(|j| j.base.sha256 == jobs[i].base.sha256 && j.base.upload.is_none())
                    .map(|j| j.base.clone());
                match same {
                    Some(b) => jobs[i].base = b,
                    None => {
                        let mut base = jobs[i].base.clone();
                        let m = jobs[i].rendered.manifest.clone();
                        openstack::base::upload(
                            &glance,
                            &mut base,
                            &m,
                            &opts.state,
                            &opts.cloud,
                            &progress,
                        )
                        .await?;
                        jobs[i].base = base;
                    }
                }
            }

            let builder = OpenStackBuilder {
                nova: &nova,
                glance: &glance,
                choice: &choice,
                opts: &opts,
            };
            let permits = tokio::sync::Semaphore::new(cmd.openstack.jobs);
            let cancel = Cancel::new(cancel_rx.clone());
            let builds = jobs.iter().map(|job| {
                let builder = &builder;
                let permits = &permits;
                let cancel = &cancel;
                async move {
                    let name = job.rendered.manifest.image.name.clone();
                    let progress = Progress::new(&name, false);
                    let permit = cancel
                        .until(async { permits.acquire().await.map_err(|_| BuildError::Cancelled) })
                        .await;
                    let _permit = match permit {
                        Ok(p) => p,
                        Err(_) => {
                            return (
                                name.clone(),
                                Err(BuildError::CloudCancelled {
                                    image: name,
                                    cleanup: Default::default(),
                                }),
                            )
                        }
                    };
                    let r = builder.build(job, &progress, cancel).await;
                    (name, r)
                }
            });
            results.extend(join_all(builds.collect()).await);
            Ok(results)
        };
        tokio::select! {
            r = work => {
                let results = r?;
                Ok(Output::CloudBuilt {
                    results,
                    api_requests: session.requests(),
                    authentications: session.authentications(),
                })
            }
            _ = watcher => unreachable!("the watcher never ends"),
        }
    })
}

/// Polls every future until all are done; for the few builds of one run.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future ended"))
        .collect()
}

pub fn gc(
    cli: &Cli,
    dry_run: bool,
    older_than: &str,
    ignore_leases: bool,
    cloud: &CloudArgs,
) -> Result<Output, Error> {
    let older_than = gc::parse_age(older_than).ok_or_else(|| {
        Error::Unsupported(format!(
            "--older-than {older_than}: expected a number with s, m, h or d (30m, 2h, 1d), or 0"
        ))
    })?;
    let session = session(cloud)?;
    let state = state_dir(cli);
    let progress = Progress::new("gc", false);
    runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let nova = Nova::from_session(&session).await?;
        let opts = gc::GcOptions {
            dry_run,
            older_than,
            ignore_leases,
            state,
            cloud: cloud_identity(&session).await?,
        };
        let report = gc::gc(&nova, &glance, &opts, &progress).await?;
        // Killed deploys and launches: the same age and lease rules.
        let deploys = crate::deploy::gc::gc(
            &nova,
            Neutron::from_session(&session),
            &crate::deploy::gc::GcOptions {
                dry_run,
                older_than,
                ignore_leases,
            },
            &progress,
        )
        .await?;
        Ok(Output::Gc(report, deploys))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_all_keeps_the_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(join_all(
            [30u64, 10, 20]
                .into_iter()
                .map(|ms| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    ms
                })
                .collect(),
        ));
        assert_eq!(out, [30, 10, 20]);
    }
}
