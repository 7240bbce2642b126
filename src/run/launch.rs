//! `ingot launch`: the command layer. What a deployment file would say
//! (image, release, flavor, network, per-instance values) comes from the
//! command line; from there the deploy's own parts do the work — the
//! release's choice, the boot rendered for this instance with its checks
//! that this checkout built the release, the preflight and the gate
//! ([`crate::deploy::launch`]).

use super::deploy::{pick, release_image, render_boot, with_cancel};
use super::runtime;
use crate::cli::{Cli, LaunchArgs};
use crate::cloud::compute::Nova;
use crate::cloud::image::{Glance, ImageStatus};
use crate::cloud::network::Neutron;
use crate::deploy::flow::{Deployer, Options};
use crate::deploy::launch::{self, LaunchError, Request};
use crate::deploy::DeployError;
use crate::error::Error;
use crate::model::deployment::{
    AddressSpec, Deployment, LoadedDeployment, ReleaseChoice, SecuritySpec, ServerSpec,
};
use crate::model::names::{Rule, ServerName};
use crate::output::Output;
use crate::progress::Progress;
use crate::release::catalog;
use std::path::PathBuf;
use std::time::Duration;

/// `NAME` means `images/NAME.yaml`; a path is a path.
fn image_file(arg: &str) -> PathBuf {
    if arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        PathBuf::from(arg)
    } else {
        PathBuf::from("images").join(format!("{arg}.yaml"))
    }
}

fn checked_name(name: &str) -> Result<(), Error> {
    ServerName::check(name).map_err(|message| {
        LaunchError::BadName {
            name: name.to_string(),
            message,
        }
        .into()
    })
}

/// `--set k=v` as a deployment's `params` travel: pairs, checked later by
/// the same composition.
fn sets(given: &[String]) -> Result<Vec<(String, String)>, Error> {
    given
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Error::BadSet { given: s.clone() }),
        })
        .collect()
}

pub fn launch(cli: &Cli, args: &LaunchArgs) -> Result<Output, Error> {
    if let Some(name) = &args.delete {
        return delete(name, args);
    }
    // clap requires these without --delete.
    let (Some(image), Some(name), Some(flavor), Some(network)) =
        (&args.image, &args.name, &args.flavor, &args.network)
    else {
        return Err(Error::Unsupported(
            "ingot launch IMAGE --name NAME --flavor FLAVOR --network NETWORK".into(),
        ));
    };
    // Everything the user must fix is said before the cloud is asked.
    checked_name(name)?;
    if args.boot_timeout == 0 {
        return Err(Error::Unsupported(
            "--boot-timeout: expected seconds, at least 1".into(),
        ));
    }
    let file = image_file(image);
    let layers = cli
        .layers
        .clone()
        .unwrap_or_else(|| crate::config::default_layers_dir(&file));
    let image_name = crate::model::load_image(&file, &layers)?.image.name;
    let spec = Deployment {
        schema: 1,
        image: image.clone(),
        release: ReleaseChoice::default(),
        cloud: None,
        region: None,
        params: Default::default(),
        server: ServerSpec {
            flavor: flavor.clone(),
            network: network.clone(),
            key_name: args.key_name.clone(),
            boot_timeout: args.boot_timeout,
        },
        security: SecuritySpec::default(),
        address: AddressSpec::Direct,
        dns: None,
        state: None,
        keep: 0,
    };
    // What render_boot reads of a deployment: the image file, the values.
    let dep = LoadedDeployment {
        name: name.clone(),
        file: file.clone(),
        deployment: spec,
        image_file: file,
        sets: sets(&args.set)?,
        positions: Default::default(),
    };
    let choice = match (&args.version, &args.channel) {
        (Some(v), _) => Some(ReleaseChoice::Version(v.clone())),
        (None, Some(c)) => Some(ReleaseChoice::Channel(c.clone())),
        (None, None) => None,
    };
    let session = super::release::session(&args.cloud)?;
    let progress = Progress::new("launch", false);
    let launched = with_cancel(move |cancel| async move {
        let glance = Glance::from_session(&session).await?;
        let nova = Nova::from_session(&session).await?;
        let neutron = Neutron::from_session(&session).await?;
        let owner = session.project_id().await?;
        let releases =
            catalog::fetch(&glance, None::<&Nova>, &image_name, owner.as_deref()).await?;
        let release = match &choice {
            Some(c) => pick(&image_name, &releases, c)?,
            // Trying a release is mostly trying the one just built.
            None => releases
                .iter()
                .find(|r| r.status == ImageStatus::Active)
                .ok_or_else(|| {
                    Error::Unsupported(format!(
                        "image {image_name} has no active release in Glance: build one (ingot build --builder openstack {})",
                        dep.image_file.display()
                    ))
                })?,
        };
        let image = release_image(&glance, &release.id).await?;
        let target = render_boot(cli, &dep, release, &image, args.secrets.as_deref()).map_err(
            |e| match e {
                Error::Deploy(d) if matches!(*d, DeployError::ChangesBake { .. }) => {
                    LaunchError::from_deploy(name, *d).into()
                }
                other => other,
            },
        )?;
        let opts = Options {
            poll: Duration::from_secs(args.poll.max(1)),
            keep_failed: args.keep_failed,
            move_wait: Duration::from_secs(60),
        };
        let deployer = Deployer {
            nova: &nova,
            neutron: &neutron,
            name,
            spec: &dep.deployment,
            opts: &opts,
            progress: &progress,
            cancel,
            dns: None,
        };
        let req = Request {
            name,
            image: &image_name,
            security_groups: &args.security_groups,
        };
        Ok(launch::launch(&deployer, &req, &target).await?)
    })?;
    Ok(Output::Launched(launched))
}

fn delete(name: &str, args: &LaunchArgs) -> Result<Output, Error> {
    checked_name(name)?;
    let session = super::release::session(&args.cloud)?;
    let progress = Progress::new("launch", false);
    let deleted = runtime()?.block_on(async {
        let nova = Nova::from_session(&session).await?;
        Ok::<_, Error>(launch::delete(&nova, name, &progress).await?)
    })?;
    Ok(Output::LaunchDeleted(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_arguments_and_sets() {
        assert_eq!(image_file("web"), PathBuf::from("images/web.yaml"));
        assert_eq!(image_file("x/web.yaml"), PathBuf::from("x/web.yaml"));
        assert_eq!(
            sets(&["fqdn=a.example.org".into(), "x=a=b".into()]).unwrap(),
            vec![
                ("fqdn".to_string(), "a.example.org".to_string()),
                ("x".to_string(), "a=b".to_string())
            ]
        );
        assert!(matches!(
            sets(&["novalue".into()]),
            Err(Error::BadSet { .. })
        ));
        assert!(matches!(sets(&["=v".into()]), Err(Error::BadSet { .. })));
    }
}
