//! The compute service (Nova): what `releases` and `prune` need to know
//! about servers, i.e. which image each one was booted from.

use super::{CloudError, Session};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    /// The Glance image it was booted from; `None` for a server booted
    /// from a volume (Nova reports `"image": ""`).
    pub image_id: Option<String>,
}

#[allow(async_fn_in_trait)]
pub trait ComputeService {
    /// Every server of the project, all pages.
    async fn servers(&self) -> Result<Vec<Server>, CloudError>;
}

pub struct Nova<'a> {
    session: &'a Session,
    base: String,
}

const SERVICE: &str = "nova";
const PAGE: usize = 500;

impl<'a> Nova<'a> {
    pub fn new(session: &'a Session, url: &str) -> Self {
        Nova {
            session,
            base: url.trim_end_matches('/').to_string(),
        }
    }

    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = session.endpoint("compute").await?;
        Ok(Nova::new(session, &url))
    }
}

#[derive(Deserialize)]
struct RawServer {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    image: Value,
}

impl From<RawServer> for Server {
    fn from(r: RawServer) -> Self {
        Server {
            image_id: r
                .image
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string),
            id: r.id,
            name: r.name,
            status: r.status,
        }
    }
}

impl ComputeService for Nova<'_> {
    async fn servers(&self) -> Result<Vec<Server>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            servers: Vec<RawServer>,
        }
        let mut servers: Vec<Server> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!("{}/servers/detail?limit={PAGE}", self.base);
            if let Some(m) = &marker {
                url.push_str(&format!("&marker={m}"));
            }
            let page: Page = self
                .session
                .json(SERVICE, Method::GET, &url, |r| {
                    r.timeout(Duration::from_secs(120))
                })
                .await?;
            let n = page.servers.len();
            servers.extend(page.servers.into_iter().map(Server::from));
            // Marker paging rather than `servers_links`: those links carry
            // the host Nova thinks it has, which is wrong behind proxies.
            if n < PAGE {
                return Ok(servers);
            }
            marker = servers.last().map(|s| s.id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_booted_servers_have_no_image() {
        let r: RawServer = serde_json::from_value(
            json!({"id": "s1", "name": "a", "status": "ACTIVE", "image": ""}),
        )
        .unwrap();
        assert_eq!(Server::from(r).image_id, None);
        let r: RawServer = serde_json::from_value(
            json!({"id": "s2", "name": "b", "status": "ACTIVE", "image": {"id": "i1", "links": []}}),
        )
        .unwrap();
        assert_eq!(Server::from(r).image_id.as_deref(), Some("i1"));
    }
}
