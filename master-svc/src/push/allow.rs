//! `--push-allow-cidr`: the addresses the master may push to. Without it, a registration could
//! make the master send tasks (and the worker token) to any host it can reach — a cloud metadata
//! endpoint, an admin port on localhost.
//!
//! The list is enforced twice. A registration's URL is checked when it arrives (every address its
//! host resolves to), so that a bad one is refused with a clear answer. And the push client
//! resolves names through [`AllowedResolver`], which drops every address the list does not admit,
//! so the address actually connected to is checked at each connection: a name that resolved to
//! an allowed address at registration and to another one later (DNS rebinding) gets nothing.
//! An IP-literal URL is never resolved; its address is checked when the worker is added.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The networks push targets must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

/// Why a push target is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The host has an address outside the list.
    #[error("`{host}` resolves to {address}, outside --push-allow-cidr ({allowed})")]
    NotAllowed {
        host: String,
        address: IpAddr,
        allowed: String,
    },
    /// The host does not resolve at all.
    #[error("cannot resolve `{host}`: {cause}")]
    Unresolvable { host: String, cause: String },
}

impl AllowList {
    /// A list admitting the addresses in `nets`; `None` when `nets` is empty (no restriction).
    pub fn new(nets: Vec<IpNet>) -> Option<Arc<AllowList>> {
        (!nets.is_empty()).then(|| Arc::new(AllowList { nets }))
    }

    /// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is checked as the IPv4 address it is.
    pub fn admits(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.nets.iter().any(|net| net.contains(&address))
    }

    /// Checks every address `url`'s host resolves to (an IP literal is its own address).
    pub async fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        if let Some(ip) = literal(host) {
            return self.check(host, [ip]);
        }
        let addresses = lookup(host).await?;
        self.check(host, addresses.iter().map(SocketAddr::ip))
    }

    /// Checks an IP-literal host without resolving anything: a name passes here and is checked
    /// at each connection.
    pub fn check_literal(&self, url: &Url) -> Result<(), Refused> {
        match url.host_str().and_then(|host| Some((host, literal(host)?))) {
            Some((host, ip)) => self.check(host, [ip]),
            None => Ok(()),
        }
    }

    fn check(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(), Refused> {
        match addresses.into_iter().find(|address| !self.admits(*address)) {
            Some(address) => Err(Refused::NotAllowed {
                host: host.to_owned(),
                address,
                allowed: self.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nets: Vec<String> = self.nets.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(", "))
    }
}

/// The address a URL's host names directly, if it is one (`10.0.0.1`, `[::1]`).
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    bare.unwrap_or(host).parse().ok()
}

/// Resolves `host` as the system does (port 0: the caller's port is put in later).
async fn lookup(host: &str) -> Result<Vec<SocketAddr>, Refused> {
    let unresolvable = |cause: String| Refused::Unresolvable {
        host: host.to_owned(),
        cause,
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(unresolvable("no addresses".into()));
    }
    Ok(addresses)
}

/// The push client's resolver: the system's, keeping only the addresses the list admits.
#[derive(Debug)]
pub struct AllowedResolver(pub Arc<AllowList>);

impl Resolve for AllowedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = lookup(&host)
                .await?
                .into_iter()
                .filter(|address| allow.admits(address.ip()))
                .collect();
            if addresses.is_empty() {
                let refused =
                    format!("no address of `{host}` is inside --push-allow-cidr ({allow})");
                return Err(refused.into());
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Parses a `--push-allow-cidr` value: a network (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_net(value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{value}` is neither a CIDR network (10.0.0.0/8) nor an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> Arc<AllowList> {
        AllowList::new(nets.iter().map(|n| parse_net(n).unwrap()).collect()).unwrap()
    }

    #[test]
    fn an_address_inside_a_listed_network_is_admitted_and_one_outside_is_not() {
        let allow = list(&["10.0.0.0/8", "fd00::/8"]);
        assert!(allow.admits("10.1.2.3".parse().unwrap()));
        assert!(allow.admits("fd00::1".parse().unwrap()));
        assert!(!allow.admits("169.254.169.254".parse().unwrap()));
        assert!(!allow.admits("::1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_address_written_as_ipv6_is_checked_as_ipv4() {
        let allow = list(&["10.0.0.0/8"]);
        assert!(allow.admits("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!allow.admits("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_single_address_is_a_network_of_one() {
        let allow = list(&["127.0.0.1"]);
        assert!(allow.admits("127.0.0.1".parse().unwrap()));
        assert!(!allow.admits("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn a_value_that_is_no_network_is_refused() {
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn the_flag_is_repeatable_and_refuses_what_is_no_network() {
        use clap::Parser;
        let args = [
            "master-svc",
            "--push-allow-cidr",
            "10.0.0.0/8",
            "--push-allow-cidr",
            "fd00::1",
        ];
        let config = crate::Config::try_parse_from(args).unwrap();
        assert_eq!(config.push_allow_cidrs.len(), 2);
        let bad = crate::Config::try_parse_from(["master-svc", "--push-allow-cidr", "10.0.0.0/40"]);
        assert!(bad.unwrap_err().to_string().contains("10.0.0.0/40"));
    }

    #[test]
    fn no_networks_means_no_restriction() {
        assert!(AllowList::new(Vec::new()).is_none());
    }
}
