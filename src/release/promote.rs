//! `ingot promote`: point a channel at one release. The channel is the tag
//! `channel:NAME`; the move adds it to the target first and then removes
//! it from the others (so the channel never points nowhere), then reads it
//! back. Promoting an older release is the channel's rollback.

use super::catalog::{self, Release};
use super::{check_channel, ReleaseError, CHANNEL_PREFIX};
use crate::cloud::image::{ImageService, ImageStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub image: String,
    pub channel: String,
    /// Where the channel pointed before (none if it is new).
    pub from: Vec<Release>,
    pub to: Release,
    pub changed: bool,
}

pub async fn promote<S: ImageService>(
    glance: &S,
    owner: Option<&str>,
    image: &str,
    selector: &str,
    channel: &str,
) -> Result<Promotion, ReleaseError> {
    check_channel(channel)?;
    let tag = format!("{CHANNEL_PREFIX}{channel}");
    let releases = catalog::releases(catalog::images_of(glance, image, owner).await?, None);
    let target = catalog::select(image, &releases, selector)?.clone();
    if target.status != ImageStatus::Active {
        return Err(ReleaseError::PromoteInactive {
            image: image.to_string(),
            version: target.label(),
            status: target.status.to_string(),
        });
    }
    let holders: Vec<Release> = releases
        .iter()
        .filter(|r| r.channels.iter().any(|c| c == channel))
        .cloned()
        .collect();
    let changed = !(holders.len() == 1 && holders[0].id == target.id);
    if changed {
        if !holders.iter().any(|r| r.id == target.id) {
            glance.add_tag(&target.id, &tag).await?;
        }
        for old in holders.iter().filter(|r| r.id != target.id) {
            glance.remove_tag(&old.id, &tag).await?;
        }
    }
    // Read back: exactly the target holds the tag.
    let found: Vec<String> = catalog::images_of(glance, image, owner)
        .await?
        .into_iter()
        .filter(|i| i.tags.contains(&tag))
        .map(|i| i.id)
        .collect();
    if found != [target.id.clone()] {
        return Err(ReleaseError::ReadBack {
            image: image.to_string(),
            channel: channel.to_string(),
            expected: target.id.clone(),
            found,
        });
    }
    let mut to = target;
    if !to.channels.iter().any(|c| c == channel) {
        to.channels.push(channel.to_string());
    }
    Ok(Promotion {
        image: image.to_string(),
        channel: channel.to_string(),
        from: holders.into_iter().filter(|r| r.id != to.id).collect(),
        to,
        changed,
    })
}
