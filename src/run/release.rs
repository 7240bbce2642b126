//! The release commands: a cloud session from the user's OpenStack
//! configuration, then `release` over Glance (and Nova, for servers).

use crate::artifact::Artifact;
use crate::cli::{CloudArgs, PublishArgs};
use crate::cloud::compute::Nova;
use crate::cloud::config::{self, Selection, Sources};
use crate::cloud::image::Glance;
use crate::cloud::retry::Retry;
use crate::cloud::{CloudError, Session};
use crate::error::Error;
use crate::output::Output;
use crate::progress::Progress;
use crate::release::publish::{self, PublishOptions, Published};
use crate::release::{catalog, promote, prune, ReleaseError};
use std::path::Path;

// Cloud commands run on the same runtime without the Ctrl-C select of
// `cancellable`: publish handles Ctrl-C itself, so that its cleanup
// (deleting an unfinished image) runs before the process exits.
use super::runtime;

pub fn session(args: &CloudArgs) -> Result<Session, Error> {
    let selection = Selection {
        cloud: args.os_cloud.clone(),
        region: args.region.clone(),
        interface: args.interface.clone(),
    };
    let cfg = config::resolve(&selection, &Sources::from_process()).map_err(CloudError::from)?;
    tracing::info!(origin = %cfg.origin, "cloud configuration");
    Ok(Session::new(cfg)?)
}

/// Before a long build that ends in a publish: the configuration resolves,
/// Keystone accepts the credentials and the catalog has Glance.
pub fn preflight(cloud: &CloudArgs) -> Result<(), Error> {
    let session = session(cloud)?;
    runtime()?.block_on(async {
        Glance::from_session(&session).await?;
        Ok(())
    })
}

/// `IMAGE` may be a name or an image file (whose `name` is used).
pub fn image_name(arg: &str) -> Result<String, Error> {
    let path = Path::new(arg);
    let looks_like_file = arg.ends_with(".yaml") || arg.ends_with(".yml");
    if !(looks_like_file && path.is_file()) {
        return Ok(arg.to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::Artifact {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| ReleaseError::Artifact {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    v.get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            ReleaseError::Artifact {
                path: path.to_path_buf(),
                message: "has no `name`".into(),
            }
            .into()
        })
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: never cancel.
        std::future::pending::<()>().await
    }
}

pub fn publish(artifact: &Path, args: &PublishArgs, cloud: &CloudArgs) -> Result<Published, Error> {
    let artifact = Artifact::load(artifact).map_err(ReleaseError::from)?;
    let bytes = artifact.file().map_err(ReleaseError::from)?.bytes;
    let session = session(cloud)?;
    let progress = Progress::new("publish", false);
    runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let opts = PublishOptions {
            visibility: args.visibility.clone(),
            owner: session.project_id().await?,
            retry: Retry {
                attempts: args.attempts.max(1),
                ..Retry::default()
            },
            ..PublishOptions::default()
        };
        progress.say(&format!(
            "publishing {} {} ({:.1} MiB) to {}",
            artifact.manifest.image.name,
            artifact.manifest.image.version,
            bytes as f64 / 1048576.0,
            glance.base()
        ));
        let published = publish::publish(&glance, &artifact, &opts, &progress, ctrl_c()).await?;
        tracing::info!(authentications = session.authentications(), "publish done");
        Ok(published)
    })
}

pub fn releases(image: &str, cloud: &CloudArgs) -> Result<Output, Error> {
    let image = image_name(image)?;
    let session = session(cloud)?;
    runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let nova = nova(&session).await?;
        let owner = session.project_id().await?;
        let releases = catalog::fetch(&glance, nova.as_ref(), &image, owner.as_deref()).await?;
        Ok(Output::Releases { image, releases })
    })
}

/// Nova if the catalog has it; a cloud without compute has no servers to
/// report, which `releases` says and `prune` refuses to guess about.
async fn nova(session: &Session) -> Result<Option<Nova<'_>>, Error> {
    match Nova::from_session(session).await {
        Ok(n) => Ok(Some(n)),
        Err(CloudError::NoEndpoint { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn promote(
    image: &str,
    version: &str,
    channel: &str,
    cloud: &CloudArgs,
) -> Result<Output, Error> {
    let image = image_name(image)?;
    crate::release::check_channel(channel)?;
    let session = session(cloud)?;
    // No Ctrl-C handling: a move is a few requests, and stopping between
    // adding the tag and removing the old one would leave the channel on
    // two releases.
    runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let owner = session.project_id().await?;
        let p = promote::promote(&glance, owner.as_deref(), &image, version, channel).await?;
        Ok(Output::Promoted(p))
    })
}

pub fn prune(image: &str, keep: usize, dry_run: bool, cloud: &CloudArgs) -> Result<Output, Error> {
    let image = image_name(image)?;
    if keep == 0 {
        return Err(ReleaseError::KeepZero { keep }.into());
    }
    let session = session(cloud)?;
    let progress = Progress::new("prune", false);
    runtime()?.block_on(async {
        let glance = Glance::from_session(&session).await?;
        let Some(nova) = nova(&session).await? else {
            return Err(ReleaseError::NoCompute {
                image: image.clone(),
            }
            .into());
        };
        let owner = session.project_id().await?;
        let releases = catalog::fetch(&glance, Some(&nova), &image, owner.as_deref()).await?;
        let plan = prune::plan(&releases, keep, crate::cloud::time::now())?;
        // Ctrl-C stops the process between or during deletions; each image
        // is then either deleted or untouched, and the next prune goes on.
        let deleted = if dry_run {
            vec![]
        } else {
            prune::apply(&glance, &image, &plan, &progress).await?
        };
        Ok(Output::Pruned {
            image,
            plan,
            dry_run,
            deleted,
        })
    })
}
