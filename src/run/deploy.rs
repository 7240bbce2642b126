//! `deploy`, `rollback`, `status`, `destroy`: the command layer reads the
//! deployment file, picks the release in Glance, renders that release's
//! boot for this deployment, and hands both to [`crate::deploy`].
//!
//! Rendering happens here, as for builds: the deploy stages are given bytes
//! and ports, never a path to render from.

use super::{build, runtime};
use crate::build::openstack::Cancel;
use crate::cli::{CloudArgs, DeployArgs};
use crate::cloud::compute::Nova;
use crate::cloud::dns::Designate;
use crate::cloud::image::{Glance, ImageService};
use crate::cloud::network::Neutron;
use crate::config::ImageInput;
use crate::deploy::dns::{self, DnsLeft, Keeper};
use crate::deploy::flow::{Deployer, Options, Target};
use crate::deploy::{fleet, status, DeployError};
use crate::error::Error;
use crate::model::deployment::{self, LoadedDeployment, ReleaseChoice};
use crate::output::Output;
use crate::progress::Progress;
use crate::release::catalog::{self, Release};
use crate::release::P_SET;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn load(arg: &str) -> Result<LoadedDeployment, Error> {
    Ok(deployment::load_deployment(&deployment::deployment_path(
        arg,
    ))?)
}

/// The deployment's cloud and region, unless the command line names them.
fn session(dep: &LoadedDeployment, args: &CloudArgs) -> Result<crate::cloud::Session, Error> {
    let merged = CloudArgs {
        os_cloud: args
            .os_cloud
            .clone()
            .or_else(|| std::env::var("OS_CLOUD").ok())
            .or_else(|| dep.deployment.cloud.clone()),
        region: args
            .region
            .clone()
            .or_else(|| std::env::var("OS_REGION_NAME").ok())
            .or_else(|| dep.deployment.region.clone()),
        interface: args.interface.clone(),
    };
    super::release::session(&merged)
}

/// The image's name, from its file.
fn image_name(dep: &LoadedDeployment) -> Result<String, Error> {
    Ok(
        crate::model::load_image(&dep.image_file, &layers_dir(dep, None))?
            .image
            .name,
    )
}

fn layers_dir(dep: &LoadedDeployment, cli: Option<&Path>) -> std::path::PathBuf {
    cli.map(Path::to_path_buf)
        .unwrap_or_else(|| crate::config::default_layers_dir(&dep.image_file))
}

/// The release a choice names among the image's releases.
pub(super) fn pick<'a>(
    image: &str,
    releases: &'a [Release],
    choice: &ReleaseChoice,
) -> Result<&'a Release, Error> {
    match choice {
        ReleaseChoice::Version(v) => Ok(catalog::select(image, releases, v)?),
        ReleaseChoice::Channel(c) => releases
            .iter()
            .find(|r| r.channels.iter().any(|x| x == c))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "image {image} has no release on channel {c} (releases: {}); promote one: ingot promote {image} VERSION --channel {c}",
                    if releases.is_empty() {
                        "none".to_string()
                    } else {
                        releases.iter().map(Release::label).collect::<Vec<_>>().join(", ")
                    }
                ))
            }),
    }
}

/// The Glance record of a release just listed.
pub(super) async fn release_image(
    glance: &Glance<'_>,
    id: &str,
) -> Result<crate::cloud::image::Image, Error> {
    glance
        .get(id)
        .await?
        .ok_or_else(|| Error::Unsupported(format!("release {id} vanished")))
}

/// The release's boot for this deployment. Two renders: the release's own
/// inputs (the image file, the layers and the `--set` values it was built
/// with) must give the release's input digest — this checkout is the one
/// that built it; then with the deployment's values added, the bake must
/// stay the same but for its digest — those values only reach the boot.
pub fn render_boot(
    cli: &crate::cli::Cli,
    dep: &LoadedDeployment,
    release: &Release,
    image: &crate::cloud::image::Image,
    secrets: Option<&Path>,
) -> Result<Target, Error> {
    let recorded: BTreeMap<String, String> = match image.property(P_SET) {
        None => BTreeMap::new(),
        Some(json) => serde_json::from_str(json).map_err(|_| DeployError::BadSetProperty {
            image: release.name.clone(),
            version: release.version.clone(),
            value: json.chars().take(80).collect(),
        })?,
    };
    let layers = layers_dir(dep, cli.layers.as_deref());
    let input = |extra: &[(String, String)], with_secrets: bool| -> Result<ImageInput, Error> {
        let given: Vec<String> = recorded
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(extra.iter().cloned())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut i = ImageInput::new(
            &dep.image_file,
            &given,
            if with_secrets { secrets } else { None },
            Some(&layers),
        )?;
        if !with_secrets {
            i.overrides.secrets.clear();
            i.overrides.defer_required_secrets = true;
        }
        Ok(i)
    };
    let (_, built) = build(&input(&[], false)?)?;
    if built.manifest.input_digest != release.digest {
        return Err(DeployError::InputsDiffer {
            image: built.manifest.image.name.clone(),
            version: release.version.clone(),
            release_digest: release.digest.clone(),
            rendered: built.manifest.input_digest.clone(),
        }
        .into());
    }
    let (_, mine) = build(&input(&dep.sets, true)?)?;
    let same_bake = |r: &crate::render::Rendered| {
        r.bake
            .text
            .replace(&r.manifest.input_digest, &release.digest)
            == built.bake.text
    };
    if !same_bake(&mine) {
        // Which values: each one alone against the release's bake.
        let mut guilty = Vec::new();
        for (k, v) in &dep.sets {
            let (_, one) = build(&input(&[(k.clone(), v.clone())], false)?)?;
            if !same_bake(&one) {
                guilty.push(k.clone());
            }
        }
        if guilty.is_empty() {
            guilty = dep.sets.iter().map(|(k, _)| k.clone()).collect();
        }
        return Err(DeployError::ChangesBake {
            deployment: dep.name.clone(),
            params: guilty,
        }
        .into());
    }
    // The boot names the release it belongs to, not the render's digest.
    let text = mine
        .boot
        .text
        .replace(&mine.manifest.input_digest, &release.digest);
    let (boot, _) =
        crate::render::fit(crate::model::Phase::Boot, text.as_bytes()).map_err(|source| {
            Error::Render {
                image: built.manifest.image.name.clone(),
                source,
            }
        })?;
    Ok(Target {
        release: release.clone(),
        image: image.clone(),
        boot,
        ports: mine.manifest.ports.clone(),
    })
}

/// Ctrl-C cancels the deploy's waits; the deploy cleans up itself.
pub(super) fn with_cancel<T, F: std::future::Future<Output = Result<T, Error>>>(
    work: impl FnOnce(Cancel) -> F,
) -> Result<T, Error> {
    runtime()?.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let watcher = async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = work(Cancel::new(rx)) => r,
            _ = watcher => unreachable!("the watcher never ends"),
        }
    })
}

pub fn deploy(cli: &crate::cli::Cli, args: &DeployArgs) -> Result<Output, Error> {
    let dep = load(&args.name)?;
    let choice = match (&args.version, &args.channel) {
        (Some(v), _) => ReleaseChoice::Version(v.clone()),
        (None, Some(c)) => ReleaseChoice::Channel(c.clone()),
        (None, None) => dep.deployment.release.clone(),
    };
    let image_name = image_name(&dep)?;
    let session = session(&dep, &args.cloud)?;
    let progress = Progress::new("deploy", false);
    let outcome = with_cancel(move |cancel| async move {
        let glance = Glance::from_session(&session).await?;
        let nova = Nova::from_session(&session).await?;
        let neutron = Neutron::from_session(&session).await?;
        let owner = session.project_id().await?;
        let releases =
            catalog::fetch(&glance, None::<&Nova>, &image_name, owner.as_deref()).await?;
        let release = pick(&image_name, &releases, &choice)?;
        let image = release_image(&glance, &release.id).await?;
        let target = render_boot(cli, &dep, release, &image, args.secrets.as_deref())?;
        let keeper = dns_keeper(&session, &dep, true).await?;
        let opts = options(args.keep_failed, args.poll);
        let deployer = Deployer {
            nova: &nova,
            neutron: &neutron,
            name: &dep.name,
            spec: &dep.deployment,
            opts: &opts,
            progress: &progress,
            cancel,
            dns: keeper.as_ref(),
        };
        Ok(deployer.deploy(&target).await?)
    })?;
    Ok(Output::Deployed(outcome))
}

fn options(keep_failed: bool, poll: u64) -> Options {
    Options {
        poll: Duration::from_secs(poll.max(1)),
        keep_failed,
        move_wait: Duration::from_secs(60),
    }
}

pub fn rollback(
    cli: &crate::cli::Cli,
    name: &str,
    to: Option<&str>,
    secrets: Option<&Path>,
    poll: u64,
    cloud: &CloudArgs,
) -> Result<Output, Error> {
    let dep = load(name)?;
    let image_name = image_name(&dep)?;
    let session = session(&dep, cloud)?;
    let progress = Progress::new("rollback", false);
    let outcome = with_cancel(move |cancel| {
        async move {
            let glance = Glance::from_session(&session).await?;
            let nova = Nova::from_session(&session).await?;
            let neutron = Neutron::from_session(&session).await?;
            let owner = session.project_id().await?;
            let keeper = dns_keeper(&session, &dep, true).await?;
            let opts = options(false, poll);
            let deployer = Deployer {
                nova: &nova,
                neutron: &neutron,
                name: &dep.name,
                spec: &dep.deployment,
                opts: &opts,
                progress: &progress,
                cancel,
                dns: keeper.as_ref(),
            };
            // What an interrupted run left is settled first, as a deploy
            // does: the choice below reads roles, which a killed run may
            // have left half changed (a standby still running, two servers
            // marked serving).
            let crate::deploy::flow::Fleet {
                members,
                serving,
                cleaned,
                ..
            } = deployer.converged().await?;
            if members.is_empty() {
                return Err(DeployError::NothingDeployed {
                    deployment: dep.name.clone(),
                }
                .into());
            }
            let releases =
                catalog::fetch(&glance, None::<&Nova>, &image_name, owner.as_deref()).await?;
            let release: Release = match to {
                Some(v) => catalog::select(&image_name, &releases, v)?.clone(),
                None => {
                    let current = serving
                        .as_ref()
                        .map(|s| s.digest.clone())
                        .unwrap_or_default();
                    // The last standby of another release served last.
                    let from_standby = members
                        .iter()
                        .filter(|m| m.role == Some(fleet::Role::Standby) && m.digest != current)
                        .find_map(|m| releases.iter().find(|r| r.id == m.release_id));
                    // Else the release published before the serving one.
                    let older = || {
                        let pos = releases.iter().position(|r| r.digest == current)?;
                        releases[pos + 1..].iter().find(|r| r.digest != current)
                    };
                    match from_standby.or_else(older) {
                        Some(r) => r.clone(),
                        None => {
                            return Err(DeployError::NoPrevious {
                                deployment: dep.name.clone(),
                                serving: serving.as_ref().map(|s| s.label()).unwrap_or_default(),
                            }
                            .into())
                        }
                    }
                }
            };
            progress.say(&format!("rolling back to release {}", release.label()));
            let image = release_image(&glance, &release.id).await?;
            // A stopped server of it: the fast path needs no render.
            if let Some(standby) = fleet::stopped_of(&members, &release.digest) {
                let group = crate::deploy::flow::SecurityReport {
                    open_tcp: crate::deploy::secgroup::open_tcp_ports(&neutron, &dep.name)
                        .await
                        .map_err(DeployError::from)?,
                    ..Default::default()
                };
                return Ok(deployer
                    .restart(
                        standby,
                        serving.as_ref(),
                        group,
                        cleaned,
                        std::time::Instant::now(),
                    )
                    .await?);
            }
            let target = render_boot(cli, &dep, &release, &image, secrets)?;
            Ok(deployer.deploy(&target).await?)
        }
    })?;
    Ok(Output::Deployed(outcome))
}

pub fn status(name: &str, cloud: &CloudArgs) -> Result<Output, Error> {
    let dep = load(name)?;
    let image_name = image_name(&dep)?;
    let session = session(&dep, cloud)?;
    let report = runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let nova = Nova::from_session(&session).await?;
        let neutron = Neutron::from_session(&session).await?;
        let owner = session.project_id().await?;
        let releases =
            catalog::fetch(&glance, None::<&Nova>, &image_name, owner.as_deref()).await?;
        let mut report = status::read(&nova, &neutron, &dep, &image_name, &releases).await?;
        if let Some(spec) = &dep.deployment.dns {
            // The floating IP, or the serving server's own addresses.
            let expected = match &dep.deployment.address {
                deployment::AddressSpec::FloatingIp { .. } => {
                    report.address.clone().into_iter().collect()
                }
                deployment::AddressSpec::Direct => report
                    .servers
                    .iter()
                    .find(|r| r.serving)
                    .map(|r| r.addresses.clone())
                    .unwrap_or_default(),
            };
            let service = Designate::from_session(&session).await;
            report.dns = Some(dns::view(service, &dep.name, &dep.deployment, spec, expected).await);
        }
        Ok::<_, Error>(report)
    })?;
    Ok(Output::DeployStatus(report))
}

pub fn destroy(
    name: &str,
    release_address: bool,
    delete_dns: bool,
    cloud: &CloudArgs,
) -> Result<Output, Error> {
    let dep = load(name)?;
    let session = session(&dep, cloud)?;
    let progress = Progress::new("destroy", false);
    let report = runtime()?.block_on(async {
        let nova = Nova::from_session(&session).await?;
        let neutron = Neutron::from_session(&session).await?;
        // The record is looked up first: with --delete-dns, a zone that
        // cannot be read stops the destroy before anything goes.
        let keeper = match dns_keeper(&session, &dep, false).await {
            Ok(k) => k,
            Err(e) if delete_dns => return Err(e),
            Err(e) => {
                progress.say(&format!("the DNS record was not looked at: {e}"));
                None
            }
        };
        let mut report =
            status::destroy(&nova, &neutron, &dep.name, release_address, &progress).await?;
        if let Some(k) = &keeper {
            let mut left = DnsLeft {
                name: k.name().to_string(),
                ..DnsLeft::default()
            };
            let describe = |rs: Vec<crate::cloud::dns::Recordset>| {
                rs.iter().map(DnsLeft::describe).collect::<Vec<_>>()
            };
            if delete_dns {
                left.deleted = describe(k.delete().await.map_err(DeployError::from)?);
            } else {
                left.kept = describe(k.ours().await.map_err(DeployError::from)?);
            }
            report.dns = Some(left);
        }
        Ok::<_, Error>(report)
    })?;
    Ok(Output::Destroyed(report))
}

/// The deployment's DNS record keeper when it names a zone: the preflight
/// of its DNS (the catalog's `dns` service, the zone, `params.fqdn` inside
/// it); with `owned`, also that a record of that name is ingot's own for
/// this deployment (a deploy never overwrites another). Reads only.
async fn dns_keeper<'s>(
    session: &'s crate::cloud::Session,
    dep: &LoadedDeployment,
    owned: bool,
) -> Result<Option<Keeper<Designate<'s>>>, Error> {
    let Some(spec) = &dep.deployment.dns else {
        return Ok(None);
    };
    let service = Designate::from_session(session).await;
    let keeper = Keeper::prepare(service, &dep.name, &dep.deployment, &spec.zone, spec.ttl)
        .await
        .map_err(DeployError::from)?;
    if owned {
        keeper.check_owner().await.map_err(DeployError::from)?;
    }
    Ok(Some(keeper))
}
