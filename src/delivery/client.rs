//! The HTTP client for customer URLs, behind the SSRF guard: it resolves
//! host names itself and hands reqwest only the addresses the guard allows,
//! so the address checked is the address connected to. No proxy (a proxy
//! would resolve the name itself), no redirects, bounded time and body.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhooks::ssrf;

/// The resolver: system DNS, then the guard's filter.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = ssrf::filter(found.iter().map(SocketAddr::ip), allow_private);
            if allowed.is_empty() {
                let why = match found.first() {
                    Some(a) => ssrf::refusal(a.ip()),
                    None => format!("{host} has no address"),
                };
                return Err(format!("refused to connect: {host}: {why}").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A client for webhook deliveries.
pub fn build(allow_private: bool, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("wagate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A person-readable account of a failed request, without the URL.
pub fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut out = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        source = s.source();
    }
    // reqwest's own top level repeats the URL; the log has it already.
    out.replace(
        &format!(" for url ({})", e.url().map(|u| u.as_str()).unwrap_or("")),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        let strict = GuardedResolver {
            allow_private: false,
        };
        let err = match strict.resolve("localhost".parse().expect("name")).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("refused"), "{err}");
        let open = GuardedResolver {
            allow_private: true,
        };
        let addrs: Vec<SocketAddr> = open
            .resolve("localhost".parse().expect("name"))
            .await
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
