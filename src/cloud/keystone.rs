//! A Keystone v3 session: authenticates once, reuses the token for every
//! request, authenticates again shortly before it expires or when a
//! service answers 401 (revoked or expired early), and finds service
//! endpoints in the token's catalog.

use super::config::{CloudConfig, Credentials, NameOrId, Secret, Tls};
use super::error::service_message;
use super::retry::Retry;
use super::CloudError;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A token this close to its expiry is replaced before use: a request that
/// starts with it must not be refused half-way.
const EXPIRY_MARGIN_SECS: i64 = 120;

pub struct Session {
    client: reqwest::Client,
    config: CloudConfig,
    identity: String,
    /// One token shared by every request. A mutex, not an RwLock: when it
    /// must be renewed, the first caller renews it and the others wait for
    /// that token instead of each authenticating.
    token: tokio::sync::Mutex<Option<Token>>,
    /// How many times this session authenticated; shown in logs, and lets
    /// tests prove the token is reused.
    authentications: AtomicU32,
    /// Service requests sent (not Keystone's): what a benchmark counts.
    requests: AtomicU32,
}

#[derive(Clone)]
struct Token {
    value: Secret,
    expires_at: i64,
    catalog: Vec<CatalogEntry>,
    project_id: Option<String>,
}

impl Token {
    fn usable_at(&self, now: i64) -> bool {
        now + EXPIRY_MARGIN_SECS < self.expires_at
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub url: String,
}

impl CatalogEndpoint {
    fn region_name(&self) -> Option<&str> {
        self.region_id.as_deref().or(self.region.as_deref())
    }
}

/// The URL of `service_type` for this interface and region. With no region
/// chosen, one region must be the only one offering the service.
pub fn select_endpoint(
    catalog: &[CatalogEntry],
    service_type: &str,
    interface: &str,
    region: Option<&str>,
) -> Result<String, CloudError> {
    let endpoints: Vec<&CatalogEndpoint> = catalog
        .iter()
        .filter(|e| e.service_type == service_type)
        .flat_map(|e| e.endpoints.iter())
        .collect();
    let matching: Vec<&&CatalogEndpoint> = endpoints
        .iter()
        .filter(|e| e.interface == interface)
        .filter(|e| region.is_none() || e.region_name() == region)
        .collect();
    let mut regions: Vec<String> = matching
        .iter()
        .map(|e| e.region_name().unwrap_or("(none)").to_string())
        .collect();
    regions.sort();
    regions.dedup();
    match matching.first() {
        None => {
            let mut available: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{} in {}",
                        e.interface,
                        e.region_name().unwrap_or("(no region)")
                    )
                })
                .collect();
            available.sort();
            available.dedup();
            Err(CloudError::NoEndpoint {
                service_type: service_type.to_string(),
                interface: interface.to_string(),
                region: region.map(str::to_string),
                available,
            })
        }
        Some(_) if regions.len() > 1 => Err(CloudError::AmbiguousRegion {
            service_type: service_type.to_string(),
            regions,
        }),
        Some(e) => Ok(e.url.trim_end_matches('/').to_string()),
    }
}

/// `http://host:5000`, `http://host:5000/` and `http://host:5000/v3` all
/// mean the v3 API; clouds.yaml files say it each way.
fn identity_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

fn name_or_id(v: &NameOrId, domain: Option<&NameOrId>) -> Value {
    match v {
        NameOrId::Id(id) => json!({ "id": id }),
        NameOrId::Name(name) => {
            let mut o = json!({ "name": name });
            if let Some(d) = domain {
                o["domain"] = name_or_id(d, None);
            }
            o
        }
    }
}

/// The body of `POST /v3/auth/tokens`. It holds the secret: it is built
/// just before sending and never logged.
fn auth_body(credentials: &Credentials) -> Value {
    match credentials {
        Credentials::Password {
            user,
            user_domain,
            password,
            scope,
        } => {
            let mut u = name_or_id(user, user_domain.as_ref());
            u["password"] = json!(password.expose());
            let mut auth = json!({
                "identity": { "methods": ["password"], "password": { "user": u } }
            });
            if let Some(s) = scope {
                auth["scope"] = json!({ "project": name_or_id(&s.project, s.domain.as_ref()) });
            }
            json!({ "auth": auth })
        }
        Credentials::ApplicationCredential {
            credential,
            user,
            user_domain,
            secret,
        } => {
            let mut c = match credential {
                NameOrId::Id(id) => json!({ "id": id }),
                NameOrId::Name(name) => json!({ "name": name }),
            };
            if let (NameOrId::Name(_), Some(u)) = (credential, user) {
                c["user"] = name_or_id(u, user_domain.as_ref());
            }
            c["secret"] = json!(secret.expose());
            json!({ "auth": { "identity": {
                "methods": ["application_credential"],
                "application_credential": c
            } } })
        }
    }
}

/// What went wrong with a request that got no HTTP answer, without the
/// URL (the message names it already): "tcp connect error: Connection
/// refused", "operation timed out".
fn transport_message(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(inner) => error_chain(inner),
        None => error_chain(e),
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    s
}

fn http_client(tls: &Tls) -> Result<reqwest::Client, CloudError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("ingot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    match tls {
        Tls::Insecure => {
            tracing::warn!("TLS certificate verification is off (verify: false / OS_INSECURE)");
            b = b.danger_accept_invalid_certs(true);
        }
        Tls::Verify { cacert: Some(path) } => {
            let bad = |message: String| CloudError::CaCert {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(error_chain(&e)))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        Tls::Verify { cacert: None } => {}
    }
    b.build().map_err(|e| CloudError::Client(error_chain(&e)))
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
    #[serde(default)]
    project: Option<IdOnly>,
    #[serde(default)]
    application_credential: Option<Value>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl Session {
    pub fn new(config: CloudConfig) -> Result<Self, CloudError> {
        Ok(Session {
            client: http_client(&config.tls)?,
            identity: identity_url(&config.auth_url),
            config,
            token: tokio::sync::Mutex::new(None),
            authentications: AtomicU32::new(0),
            requests: AtomicU32::new(0),
        })
    }

    pub fn authentications(&self) -> u32 {
        self.authentications.load(Ordering::Relaxed)
    }

    /// Requests sent to services so far, retries included.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn authenticate(&self) -> Result<Token, CloudError> {
        let url = format!("{}/auth/tokens", self.identity);
        let n = self.authentications.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(url = %url, origin = %self.config.origin, attempt = n, "authenticating with keystone");
        let response = self
            .client
            .post(&url)
            .timeout(Duration::from_secs(60))
            .json(&auth_body(&self.config.credentials))
            .send()
            .await
            .map_err(|e| CloudError::Transport {
                service: "keystone",
                method: "POST".into(),
                url: url.clone(),
                message: transport_message(&e),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CloudError::Auth {
                url,
                origin: self.config.origin.clone(),
                status: status.as_u16(),
                message: service_message(&body),
            });
        }
        let value = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(Secret::new)
            .ok_or_else(|| CloudError::Protocol {
                service: "keystone",
                what: format!("POST {url}"),
                message: "no X-Subject-Token header".into(),
            })?;
        let body: TokenBody = response.json().await.map_err(|e| CloudError::Protocol {
            service: "keystone",
            what: format!("POST {url}"),
            message: error_chain(&e),
        })?;
        let expires_at =
            super::time::parse_utc(&body.token.expires_at).ok_or_else(|| CloudError::Protocol {
                service: "keystone",
                what: format!("POST {url}"),
                message: format!("expires_at {:?} is not a UTC time", body.token.expires_at),
            })?;
        tracing::debug!(
            expires_at = %body.token.expires_at,
            services = body.token.catalog.len(),
            application_credential = body.token.application_credential.is_some(),
            "token issued"
        );
        Ok(Token {
            value,
            expires_at,
            catalog: body.token.catalog,
            project_id: body.token.project.map(|p| p.id),
        })
    }

    /// A token valid for at least [`EXPIRY_MARGIN_SECS`] more seconds.
    async fn current(&self) -> Result<Token, CloudError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if t.usable_at(super::time::now()) {
                return Ok(t.clone());
            }
            tracing::info!("token expires within {EXPIRY_MARGIN_SECS} s: authenticating again");
        }
        let t = self.authenticate().await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Forget `token` (a service refused it) unless another request
    /// already replaced it.
    async fn invalidate(&self, token: &Secret) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| &t.value == token) {
            *slot = None;
        }
    }

    /// The current token, authenticating if needed. It is a [`Secret`]:
    /// printing it shows `<redacted>`.
    pub async fn token(&self) -> Result<Secret, CloudError> {
        Ok(self.current().await?.value)
    }

    /// Keystone's URL, as configured: with the project, what names a cloud.
    pub fn auth_url(&self) -> &str {
        &self.config.auth_url
    }

    /// The project the token is scoped to (images are listed by owner).
    pub async fn project_id(&self) -> Result<Option<String>, CloudError> {
        Ok(self.current().await?.project_id)
    }

    /// The base URL of a service: the configured override, else the
    /// catalog's endpoint for the configured interface and region.
    pub async fn endpoint(&self, service_type: &str) -> Result<String, CloudError> {
        if let Some(url) = self.config.endpoint_overrides.get(service_type) {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let token = self.current().await?;
        select_endpoint(
            &token.catalog,
            service_type,
            self.config.interface.as_str(),
            self.config.region.as_deref(),
        )
    }

    /// Sends one request built by `build` with the token added. A 401 means
    /// the token was revoked or expired early: authenticate again and send
    /// once more. Any other error status becomes [`CloudError::Http`].
    pub async fn send(
        &self,
        service: &'static str,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, CloudError> {
        // Requests that mean the same when repeated are retried through a
        // brief outage; a create (POST) or a patch is not: a lost answer
        // would make it happen twice.
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        let retry = if idempotent {
            Retry::default()
        } else {
            Retry {
                attempts: 1,
                ..Retry::default()
            }
        };
        retry
            .run(
                |_| self.send_reauth(service, method.clone(), url, &build),
                CloudError::is_transient,
                |e, n| tracing::warn!(%url, attempt = n, "{service}: {e}; trying again"),
            )
            .await
    }

    async fn send_reauth(
        &self,
        service: &'static str,
        method: Method,
        url: &str,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, CloudError> {
        match self.send_once(service, method.clone(), url, build).await {
            Err(e) if e.status() == Some(401) => {
                tracing::info!(%url, "{service} refused the token (401): authenticating again");
                self.send_once(service, method, url, build).await
            }
            other => other,
        }
    }

    /// Sends one request, once: for bodies that can be sent only once (an
    /// upload stream). A 401 forgets the token, so that the caller's next
    /// attempt authenticates again.
    pub async fn send_once(
        &self,
        service: &'static str,
        method: Method,
        url: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, CloudError> {
        let token = self.current().await?;
        tracing::debug!(%method, %url, "{service} request");
        self.requests.fetch_add(1, Ordering::Relaxed);
        let request = build(self.client.request(method.clone(), url))
            .header("X-Auth-Token", token.value.expose());
        let response = request.send().await.map_err(|e| CloudError::Transport {
            service,
            method: method.to_string(),
            url: url.to_string(),
            message: transport_message(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            self.invalidate(&token.value).await;
        }
        let body = response.text().await.unwrap_or_default();
        Err(CloudError::Http {
            service,
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message: service_message(&body),
        })
    }

    /// A JSON request whose answer is parsed into `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        service: &'static str,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, CloudError> {
        let response = self.send(service, method.clone(), url, build).await?;
        response.json().await.map_err(|e| CloudError::Protocol {
            service,
            what: format!("{method} {url}"),
            message: error_chain(&e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::config::ProjectScope;

    fn catalog() -> Vec<CatalogEntry> {
        serde_json::from_value(json!([
            {"type": "image", "name": "glance", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "https://img.one/"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://10.0.0.1:9292"},
                {"interface": "public", "region_id": "RegionTwo", "url": "https://img.two"}
            ]},
            {"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://nova.one/v2.1"}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn endpoint_by_interface_and_region() {
        let c = catalog();
        assert_eq!(
            select_endpoint(&c, "image", "public", Some("RegionOne")).unwrap(),
            "https://img.one"
        );
        assert_eq!(
            select_endpoint(&c, "image", "internal", Some("RegionOne")).unwrap(),
            "http://10.0.0.1:9292"
        );
        assert_eq!(
            select_endpoint(&c, "compute", "public", None).unwrap(),
            "https://nova.one/v2.1"
        );
    }

    #[test]
    fn endpoint_errors_say_what_exists() {
        let c = catalog();
        assert_eq!(
            select_endpoint(&c, "image", "admin", Some("RegionOne"))
                .unwrap_err()
                .to_string(),
            "the catalog has no image endpoint for interface admin in region RegionOne; it offers: internal in RegionOne, public in RegionOne, public in RegionTwo"
        );
        assert_eq!(
            select_endpoint(&c, "image", "public", None)
                .unwrap_err()
                .to_string(),
            "several regions offer image (RegionOne, RegionTwo): choose one with --os-region-name or region_name in clouds.yaml"
        );
        assert_eq!(
            select_endpoint(&c, "network", "public", None)
                .unwrap_err()
                .to_string(),
            "the catalog has no network endpoint for interface public; it offers: nothing of that type"
        );
    }

    #[test]
    fn identity_url_is_v3_whatever_the_spelling() {
        assert_eq!(identity_url("http://k:5000"), "http://k:5000/v3");
        assert_eq!(identity_url("http://k:5000/"), "http://k:5000/v3");
        assert_eq!(identity_url("http://k:5000/v3/"), "http://k:5000/v3");
        assert_eq!(
            identity_url("https://k/identity/v3"),
            "https://k/identity/v3"
        );
    }

    #[test]
    fn auth_bodies() {
        let pw = Credentials::Password {
            user: NameOrId::Name("ingot".into()),
            user_domain: Some(NameOrId::Name("Default".into())),
            password: Secret::new("pw"),
            scope: Some(ProjectScope {
                project: NameOrId::Id("p1".into()),
                domain: None,
            }),
        };
        assert_eq!(
            auth_body(&pw),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "ingot", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"id": "p1"}}}})
        );
        let by_name = Credentials::ApplicationCredential {
            credential: NameOrId::Name("ci".into()),
            user: Some(NameOrId::Id("u1".into())),
            user_domain: None,
            secret: Secret::new("s"),
        };
        assert_eq!(
            auth_body(&by_name),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"name": "ci", "user": {"id": "u1"}, "secret": "s"}}}})
        );
    }

    #[test]
    fn a_token_is_renewed_before_it_expires() {
        let t = Token {
            value: Secret::new("t"),
            expires_at: 10_000,
            catalog: vec![],
            project_id: None,
        };
        assert!(t.usable_at(10_000 - EXPIRY_MARGIN_SECS - 1));
        assert!(!t.usable_at(10_000 - EXPIRY_MARGIN_SECS));
        assert!(!t.usable_at(20_000));
    }
}
