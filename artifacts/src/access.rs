//! Which buckets a model may come from. The start-up configuration is trusted, but a
//! management API that loads a model from a URL given in a request is not: without a check,
//! a caller could make the server fetch from the cloud metadata service, from a port on
//! loopback or from any file it can read (TorchServe's "ShellTorch" SSRF). A
//! [`BucketAllowList`] lists the URL prefixes an operator trusts and refuses the rest,
//! at every step of a download:
//!
//! - [`BucketAllowList::check`] judges a URL as written: scheme, no credentials, under a listed
//!   prefix once the URL parser has resolved `..`, never at a metadata, link-local or
//!   unspecified address, at a loopback address only when the prefix itself names one, and for
//!   `file:` URLs, still under the prefix once symbolic links are followed;
//! - [`GuardedResolver`] judges what a host name resolves to when the connection is made, so
//!   a name that resolves (or is rebound) to loopback or the metadata service is refused;
//! - [`BucketAllowList::redirect_policy`] judges every redirect target the same way.
//!
//! [`BucketAllowList::guard_client`] puts the last two on an HTTP client; the downloads of
//! [`crate::download`] do so whenever their policy carries an allow-list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::{Error, Result};

/// The most redirects a guarded download follows.
pub const MAX_REDIRECTS: usize = 5;

/// Cloud instance metadata services (AWS, GCP and Azure share the first; AWS's IPv6 one;
/// Alibaba Cloud's), whose answers include credentials.
const METADATA_ADDRESSES: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// The URL prefixes models may be loaded from; anything else is refused with
/// [`Error::Refused`]. An empty list refuses everything.
#[derive(Clone, Debug)]
pub struct BucketAllowList {
    prefixes: Vec<Prefix>,
}

/// One trusted prefix, normalised by the URL parser and ending with `/`.
#[derive(Clone, Debug)]
struct Prefix {
    url: Url,
    /// Whether its host is a loopback IP literal: the only way to allow loopback.
    loopback: bool,
}

impl BucketAllowList {
    /// Parses the trusted prefixes: each an `http`, `https` or `file` URL without user name,
    /// password, query or fragment (`https://models.example.com/mnist/`,
    /// `http://127.0.0.1:9000/`, `file:///srv/models/`). Each is normalised to end with `/`, so
    /// that it covers whole path segments only. A prefix that fails these rules, or that names
    /// an address [`check`](Self::check) always refuses, is an [`Error::InvalidAllowList`].
    pub fn new(prefixes: &[String]) -> Result<BucketAllowList> {
        let prefixes = prefixes.iter().map(|prefix| Prefix::parse(prefix)).collect::<Result<_>>()?;
        Ok(BucketAllowList { prefixes })
    }

    /// Whether `location` (a bucket, or a file in one) may be read: an `http(s)` or `file` URL
    /// (a plain path is refused) without user name or password that, once normalised by the
    /// URL parser, starts with a listed prefix (or equals one without its final `/`). An IP
    /// literal host must not be unspecified, link-local or a cloud metadata address, nor
    /// loopback unless the prefix's host is a loopback literal too (IPv4-mapped IPv6 addresses
    /// are judged as the IPv4 address they carry). A `file` URL must be written in its
    /// normal form without percent-escapes (it is read as written), and must stay under the
    /// prefix's folder once symbolic links are followed.
    ///
    /// Host names are not resolved here: [`GuardedResolver`] judges them when connecting.
    pub fn check(&self, location: &str) -> Result<()> {
        let refused = |reason: String| Error::Refused { url: location.to_owned(), reason };
        let url = Url::parse(location).map_err(|error| refused(format!("not an http(s) or file URL ({error})")))?;
        self.check_url(&url, Some(location)).map_err(refused)
    }

    /// The checks of [`check`](Self::check) on a parsed URL; `written` is the text it was
    /// parsed from, when there is one. Returns why it is refused.
    fn check_url(&self, url: &Url, written: Option<&str>) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(format!("the scheme `{}` is not http, https or file", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a user name or password in the URL is refused".into());
        }
        let ip = host_ip(url);
        if let Some(why) = ip.and_then(always_refused) {
            return Err(format!("its host is {why}"));
        }
        let normalised = url.as_str();
        let mut candidates = self.prefixes.iter().filter(|prefix| prefix.covers(normalised)).peekable();
        if candidates.peek().is_none() {
            return Err(format!("{normalised} is not under any allowed prefix"));
        }
        let mut first_refusal = None;
        for prefix in candidates {
            let verdict = if ip.is_some_and(|ip| ip.is_loopback()) && !prefix.loopback {
                Err("its host is a loopback address, which the allow-list does not name".into())
            } else if url.scheme() == "file" {
                check_file(url, written, prefix)
            } else {
                Ok(())
            };
            match verdict {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    first_refusal.get_or_insert(reason);
                }
            }
        }
        Err(first_refusal.unwrap_or_default())
    }

    /// A redirect policy that follows at most [`MAX_REDIRECTS`] redirects, each only to an
    /// http(s) URL that passes [`check`](Self::check); otherwise the request fails with an
    /// error saying the redirect left the allow-list (the download reports it as
    /// [`Error::Refused`]).
    pub fn redirect_policy(&self) -> reqwest::redirect::Policy {
        let allowed = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let target = attempt.url();
            let verdict = match target.scheme() {
                "http" | "https" => allowed.check_url(target, None),
                _ => Err("a redirect must stay on http(s)".into()),
            };
            match verdict {
                Ok(()) => attempt.follow(),
                Err(reason) => {
                    let reason = format!("the redirect to {target} left the allow-list: {reason}");
                    attempt.error(Refusal { reason })
                }
            }
        })
    }

    /// `builder` with the guards of this allow-list: host names resolved by
    /// [`GuardedResolver`], redirects judged by [`redirect_policy`](Self::redirect_policy),
    /// and no proxy (a proxy would resolve host names itself, out of the resolver's sight).
    pub fn guard_client(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.dns_resolver(GuardedResolver).redirect(self.redirect_policy()).no_proxy()
    }
}

impl Prefix {
    fn parse(text: &str) -> Result<Prefix> {
        let invalid = |reason: String| Error::InvalidAllowList { prefix: text.to_owned(), reason };
        let mut url = Url::parse(text).map_err(|error| invalid(format!("not a URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(invalid(format!("the scheme `{}` is not http, https or file", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("a user name or password is not allowed".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed".into()));
        }
        if url.scheme() == "file"
            && (url.host_str().is_some_and(|host| !host.is_empty()) || url.to_file_path().is_err())
        {
            return Err(invalid("a file URL must name a local absolute path".into()));
        }
        let ip = host_ip(&url);
        if let Some(why) = ip.and_then(always_refused) {
            return Err(invalid(format!("its host is {why}, which is always refused")));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Prefix { url, loopback: ip.is_some_and(|ip| ip.is_loopback()) })
    }

    /// Whether the normalised URL `location` is this prefix or below it.
    fn covers(&self, location: &str) -> bool {
        let prefix = self.url.as_str();
        location.starts_with(prefix) || prefix.strip_suffix('/') == Some(location)
    }
}

/// The `file` URL checks of [`BucketAllowList::check`], once `url` is known to be under
/// `prefix` as text.
fn check_file(url: &Url, written: Option<&str>, prefix: &Prefix) -> Result<(), String> {
    if url.host_str().is_some_and(|host| !host.is_empty()) {
        return Err("a file URL must not name a host".into());
    }
    // A query or fragment would be read as part of the path.
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a file URL must have no query or fragment".into());
    }
    let as_written = written.is_none_or(|text| text == url.as_str());
    if !as_written || url.path().contains('%') {
        return Err(format!(
            "a file URL must be written in its normal form ({url}) without percent-escapes, as it is read as written"
        ));
    }
    let path = url.to_file_path().map_err(|()| "not a local absolute path".to_owned())?;
    if path.components().any(|part| part == Component::ParentDir) {
        return Err("its path has a `..` component".into());
    }
    let root = prefix.url.to_file_path().map_err(|()| "the prefix is not a local absolute path".to_owned())?;
    let (real, real_root) = (real_path(&path)?, real_path(&root)?);
    if !real.starts_with(&real_root) {
        return Err(format!(
            "{} leads to {}, outside {} (through a symbolic link)",
            path.display(),
            real.display(),
            real_root.display()
        ));
    }
    Ok(())
}

/// `path` with every symbolic link followed: its longest existing ancestor canonicalised,
/// then the rest appended. A dangling symbolic link is refused, since what it will point to
/// cannot be judged.
fn real_path(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |real, part| real.join(part))),
            Err(_) if existing.symlink_metadata().is_ok_and(|meta| meta.is_symlink()) => {
                return Err(format!("{} is a dangling symbolic link", existing.display()));
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name);
                    existing = parent;
                }
                _ => return Ok(path.to_path_buf()),
            },
        }
    }
}

/// The host of `url` when it is an IP literal, IPv4-mapped IPv6 addresses unwrapped.
fn host_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    host.parse::<IpAddr>().ok().map(unmapped)
}

/// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) carries, or `ip` itself.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Why an address is refused whatever the allow-list says, if it is.
fn always_refused(ip: IpAddr) -> Option<&'static str> {
    let ip = unmapped(ip);
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if METADATA_ADDRESSES.contains(&ip) {
        Some("a cloud metadata address")
    } else if match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    } {
        Some("a link-local address")
    } else {
        None
    }
}

/// Why a host name may not resolve to `ip`, if it may not: what [`always_refused`] refuses,
/// and loopback, which only an IP literal in the allow-list allows.
fn refused_resolution(ip: IpAddr) -> Option<&'static str> {
    always_refused(ip).or_else(|| unmapped(ip).is_loopback().then_some("a loopback address"))
}

/// A DNS resolver for guarded downloads: resolves with the system resolver (through
/// `tokio::net::lookup_host`) and refuses a name when any of its addresses is loopback,
/// link-local, unspecified or a cloud metadata address. Judging the addresses the connection
/// will actually use defeats DNS rebinding; loopback is allowed only when written as an IP
/// literal in the allow-list, so `localhost` is refused. IP literal hosts are not resolved.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                if let Some(why) = refused_resolution(address.ip()) {
                    let reason = format!("the host `{host}` resolves to {}, {why}", address.ip());
                    return Err(Box::new(Refusal { reason }) as _);
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// A refusal raised inside reqwest (by the resolver or the redirect policy), found again in
/// the error chain by [`refusal_in`].
#[derive(Debug)]
struct Refusal {
    reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

/// Why a request failed, when a guard of this module refused it somewhere in `error`'s chain.
pub(crate) fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return Some(refusal.reason.clone());
        }
        cause = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(prefixes: &[&str]) -> BucketAllowList {
        BucketAllowList::new(&prefixes.iter().map(|prefix| prefix.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn reason(list: &BucketAllowList, location: &str) -> String {
        match list.check(location) {
            Err(Error::Refused { url, reason }) => {
                assert_eq!(url, location);
                reason
            }
            other => panic!("{location} was not refused: {other:?}"),
        }
    }

    #[test]
    fn prefixes_must_be_plain_http_https_or_file_urls() {
        for bad in [
            "models/",
            "/srv/models/",
            "ftp://example.com/",
            "https://user:secret@example.com/",
            "https://user@example.com/",
            "https://example.com/?x=1",
            "https://example.com/#top",
            "http://169.254.169.254/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:8080/",
            "file://server/share/",
        ] {
            let error = BucketAllowList::new(&[bad.to_owned()]).unwrap_err();
            assert!(matches!(&error, Error::InvalidAllowList { prefix, .. } if prefix == bad), "{bad}: {error}");
            assert!(error.to_string().contains(bad), "{error}");
        }
        let list = allow(&["https://Example.COM/models", "file:///srv/models"]);
        let normalised: Vec<&str> = list.prefixes.iter().map(|prefix| prefix.url.as_str()).collect();
        assert_eq!(normalised, ["https://example.com/models/", "file:///srv/models/"]);
    }

    #[test]
    fn a_location_must_be_under_a_prefix_on_a_segment_boundary() {
        let list = allow(&["https://example.com/models"]);
        assert!(list.check("https://example.com/models").is_ok());
        assert!(list.check("https://example.com/models/").is_ok());
        assert!(list.check("https://example.com/models/mnist/sha512sums.txt").is_ok());
        assert!(list.check("HTTPS://EXAMPLE.com:443/models/mnist").is_ok(), "normalised before matching");
        assert!(reason(&list, "https://example.com/models-evil/x").contains("not under any allowed prefix"));
        reason(&list, "https://example.com/model");
        reason(&list, "https://example.com/");
        reason(&list, "http://example.com/models/x");
        reason(&list, "https://example.com:8443/models/x");
        reason(&list, "https://example.com.evil.net/models/x");
        reason(&list, "https://evil.net/https://example.com/models/x");
    }

    #[test]
    fn dot_segments_are_resolved_before_matching() {
        let list = allow(&["https://example.com/models/"]);
        assert!(list.check("https://example.com/models/a/../b").is_ok());
        reason(&list, "https://example.com/models/../secrets/x");
        reason(&list, "https://example.com/models/%2e%2e/secrets/x");
        reason(&list, "https://example.com/models/./../secrets");
    }

    #[test]
    fn credentials_other_schemes_and_plain_paths_are_refused() {
        let list = allow(&["https://example.com/", "file:///srv/models/"]);
        assert!(reason(&list, "https://user:pw@example.com/x").contains("password"));
        assert!(reason(&list, "https://user@example.com/x").contains("user name"));
        assert!(reason(&list, "/srv/models/x").contains("not an http(s) or file URL"));
        assert!(reason(&list, "srv/models/x").contains("not an http(s) or file URL"));
        assert!(reason(&list, "ftp://example.com/x").contains("scheme"));
        reason(&list, "gopher://example.com/x");
    }

    #[test]
    fn link_local_metadata_and_unspecified_literals_are_always_refused() {
        for (location, why) in [
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
            ("http://100.100.100.200/latest/meta-data/", "metadata"),
            ("http://169.254.1.1/x", "link-local"),
            ("http://[fe80::1]/x", "link-local"),
            ("http://0.0.0.0/x", "unspecified"),
            ("http://[::]/x", "unspecified"),
            ("http://[::ffff:169.254.169.254]/x", "metadata"),
            ("http://0xa9fea9fe/x", "metadata"),
        ] {
            // 100.100.100.0/24 is otherwise an ordinary range: only the service's address is refused.
            let list = allow(&["http://100.100.100.201/"]);
            assert!(reason(&list, location).contains(why), "{location}: {}", reason(&list, location));
        }
    }

    #[test]
    fn loopback_is_allowed_only_as_a_listed_literal() {
        let listed = allow(&["http://127.0.0.1:9000/", "http://[::1]:9000/"]);
        assert!(listed.check("http://127.0.0.1:9000/bucket/x").is_ok());
        assert!(listed.check("http://[::1]:9000/bucket/x").is_ok());
        reason(&listed, "http://127.0.0.1:9001/bucket/x");
        reason(&listed, "http://127.0.0.2:9000/bucket/x");
        reason(&listed, "http://localhost:9000/bucket/x");

        let unlisted = allow(&["http://example.com/"]);
        for location in ["http://127.0.0.1/x", "http://[::1]/x", "http://2130706433/x", "http://[::ffff:127.0.0.1]/x"] {
            reason(&unlisted, location);
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_as_ipv4() {
        assert_eq!(unmapped("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(always_refused("::ffff:169.254.10.10".parse().unwrap()), Some("a link-local address"));
        assert_eq!(refused_resolution("::ffff:127.0.0.1".parse().unwrap()), Some("a loopback address"));
        assert_eq!(refused_resolution("::1".parse().unwrap()), Some("a loopback address"));
        assert_eq!(refused_resolution("93.184.216.34".parse().unwrap()), None);
        // A listed mapped loopback literal allows itself, as 127.0.0.1 would.
        let list = allow(&["http://[::ffff:127.0.0.1]:9000/"]);
        assert!(list.check("http://[::ffff:7f00:1]:9000/x").is_ok());
    }

    #[test]
    fn file_urls_stay_under_their_prefix_even_through_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let allowed = root.join("allowed");
        let outside = root.join("outside");
        std::fs::create_dir_all(allowed.join("model")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.tar.gz"), b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("gone"), allowed.join("dangling")).unwrap();
        std::os::unix::fs::symlink(allowed.join("model"), allowed.join("inner")).unwrap();
        let list = allow(&[&format!("file://{}", allowed.display())]);
        let url = |path: &str| format!("file://{}/{path}", allowed.display());

        assert!(list.check(&url("model")).is_ok());
        assert!(list.check(&url("model/not-yet-there.tar.gz")).is_ok());
        assert!(list.check(&url("inner/x.tar.gz")).is_ok(), "a link that stays inside is fine");
        assert!(reason(&list, &url("escape/secret.tar.gz")).contains("symbolic link"));
        assert!(reason(&list, &url("escape")).contains("symbolic link"));
        assert!(reason(&list, &url("escape/missing/deeper")).contains("symbolic link"));
        assert!(reason(&list, &url("dangling/x")).contains("dangling"));
        reason(&list, &url("../outside/secret.tar.gz"));
        reason(&list, &url("..%2foutside/secret.tar.gz"));
        reason(&list, &url("model%20x"));
        reason(&list, &format!("FILE://{}/model", allowed.display()));
        reason(&list, &format!("file://localhost{}/model", allowed.display()));
        reason(&list, &format!("file://{}/secret.tar.gz", outside.display()));
        let query = format!("file://{}/model/?/../../outside/secret.tar.gz", allowed.display());
        assert!(reason(&list, &query).contains("no query"), "a query would be read as part of the path");
    }

    #[test]
    fn refusals_are_found_deep_in_an_error_chain() {
        /// An error that wraps another, as reqwest and hyper wrap the resolver's.
        #[derive(Debug)]
        struct Wrapper(Box<dyn std::error::Error + Send + Sync>);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let refusal = Refusal { reason: "the redirect to x left the allow-list".into() };
        let wrapped = Wrapper(Box::new(Wrapper(Box::new(refusal))));
        assert_eq!(refusal_in(&wrapped).as_deref(), Some("the redirect to x left the allow-list"));
        assert_eq!(refusal_in(&Wrapper("unrelated".into())), None);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let error = GuardedResolver.resolve("localhost".parse().unwrap()).await.err().expect("localhost is refused");
        let reason = refusal_in(error.as_ref()).unwrap();
        assert!(reason.contains("`localhost` resolves to") && reason.contains("loopback"), "{reason}");
    }
}
