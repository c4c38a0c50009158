//! ACME (RFC 8555) against clients we did not write: Debian's certbot 2.1 (http-01; it has no
//! tls-alpn-01) and lego 4.9.1 (http-01, tls-alpn-01, and dns-01 through RFC 2136 updates to the
//! test DNS server), each certificate checked with openssl (chain to the root, exactly the names
//! asked for, the serial in the CRL after a revocation).
//!
//! The names live in the zone `acme.test` of scripts/dns.sh's server (every name answers
//! 127.0.0.1); the signer's `[acme.web]` directory resolves them there, and the clients'
//! challenge servers listen on loopback ports the policy names as its validation ports. The
//! harness test checks the DNS server itself.

mod common;

use std::path::{Path, PathBuf};

use common::acme::*;
use common::*;

#[test]
fn dns_server_accepts_tsig_updates_and_answers() {
    let Some(dns) = Dns::from_env() else {
        return;
    };
    // Every name under the zone is loopback, IPv4 only.
    let host = dns.unique_name("x");
    assert_eq!(dns.dig_short(&host, "A"), ["127.0.0.1"]);
    assert_eq!(dns.dig_short(&dns.zone, "A"), ["127.0.0.1"]);
    assert!(dns.dig_short(&host, "AAAA").is_empty());

    // An RFC 2136 update signed with the TSIG key adds the dns-01 record; dig reads it back.
    let record = format!("_acme-challenge.{host}");
    dns.nsupdate_ok(&format!("update add {record}. 60 TXT \"abc\""));
    assert_eq!(dns.dig_short(&record, "TXT"), ["\"abc\""]);

    // An update signed with another secret, or not at all, changes nothing.
    let forged = dns.nsupdate_with_key(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &format!("update add {record}. 60 TXT \"forged\""),
    );
    assert!(
        !forged.status.success(),
        "a forged TSIG update was accepted"
    );
    assert_eq!(dns.dig_short(&record, "TXT"), ["\"abc\""]);

    // Deleting it (what the clients do after validation) leaves no record.
    dns.nsupdate_ok(&format!("update delete {record}. TXT"));
    assert!(dns.dig_short(&record, "TXT").is_empty());
}

/// A signer serving the ACME directory `web` for the names under `acme.test`, and what the
/// clients need to use it.
struct Acme {
    tmp: TempDir,
    server: Server,
    dns: Dns,
    /// The CA's root (PEM), the only trust the clients get.
    root: PathBuf,
    /// The ports the signer validates http-01 and tls-alpn-01 on, where the clients listen.
    http_port: u16,
    tls_port: u16,
    /// `https://127.0.0.1:PORT/acme/web/directory`.
    directory: String,
}

/// The test policy: a leaf profile `web` for `acme.test` and the names under it, and the ACME
/// directory `web` issuing with it (all three challenge types, validation on the given loopback
/// ports, dns-01 and name lookups through the test DNS server).
fn policy(http_port: u16, tls_port: u16, dns: &Dns) -> String {
    format!(
        r#"
[profiles.web]
usage = "server"
maxLifetimeSecs = 604800
names = {{ allow = [{{ type = "dns", value = "acme.test" }}, {{ type = "dns", value = ".acme.test" }}] }}

[acme.web]
profile = "web"
challenges = ["http-01", "tls-alpn-01", "dns-01"]
validationPorts = {{ http = {http_port}, tls = {tls_port} }}
resolvers = ["{}"]
allowedNetworks = ["127.0.0.0/8"]
"#,
        dns.addr
    )
}

/// A fresh CA and a signer with [`policy`] on free ports, or None when the test DNS server or
/// the module is missing (outside CI; under CI those panic).
fn start(tag: &str) -> Option<Acme> {
    let dns = Dns::from_env()?;
    if common::no_module() {
        return None;
    }
    let (tmp, dir) = new_ca(tag, &[]);
    let (http_port, tls_port) = (free_port(), free_port());
    let file = tmp.path("policy.toml");
    std::fs::write(&file, policy(http_port, tls_port, &dns)).unwrap();
    let server = Server::start(&dir, &["--policy", file.to_str().unwrap()]);
    let directory = format!("{}/acme/web/directory", server.base);
    Some(Acme {
        root: dir.join("root.pem"),
        tmp,
        server,
        dns,
        http_port,
        tls_port,
        directory,
    })
}

impl Acme {
    /// A scratch directory for one client's state.
    fn work(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// certbot `certonly --standalone` (http-01 on the validation port) for `names`; returns
    /// certbot's live directory for the certificate, after checking it with [`assert_issued`].
    fn certbot_http01(&self, work: &Path, names: &[&str]) -> PathBuf {
        let port = self.http_port.to_string();
        let mut args = vec![
            "certonly",
            "--standalone",
            "--http-01-port",
            &port,
            "--http-01-address",
            "127.0.0.1",
            "--server",
            &self.directory,
        ];
        for n in names {
            args.extend_from_slice(&["-d", n]);
        }
        certbot_ok(&self.root, &args, &[], work);
        let live = certbot_live(work, names[0]);
        self.check_certbot(&live, names);
        live
    }

    /// The certificate in certbot's `live` directory chains to the root and names `names`.
    fn check_certbot(&self, live: &Path, names: &[&str]) {
        assert_issued(
            &self.root,
            &live.join("cert.pem"),
            Some(&live.join("chain.pem")),
            names,
        );
    }

    /// `lego … -d NAME run` with the challenge options `challenge` (and `env`); returns the
    /// certificate file after checking it with [`assert_issued`].
    fn lego_run(
        &self,
        work: &Path,
        name: &str,
        challenge: &[&str],
        env: &[(&str, &str)],
    ) -> PathBuf {
        let mut args = vec!["--server", self.directory.as_str()];
        args.extend_from_slice(challenge);
        args.extend_from_slice(&["-d", name, "run"]);
        lego_ok(&self.root, &args, env, work);
        let (cert, issuer) = lego_cert(work, name);
        assert_issued(&self.root, &cert, Some(&issuer), &[name]);
        cert
    }
}

#[test]
fn certbot_issues_renews_and_revokes_over_http01() {
    let Some(a) = start("acme-certbot") else {
        return;
    };
    let work = a.work("certbot");
    let names = ["a.acme.test", "b.acme.test"];
    let live = a.certbot_http01(&work, &names);
    let first = cert_serial(&work, &live.join("cert.pem"));

    // Renewal: a new certificate (another serial) for the same names, from the saved settings.
    certbot_ok(
        &a.root,
        &["renew", "--force-renewal", "--no-random-sleep-on-renew"],
        &[],
        &work,
    );
    a.check_certbot(&live, &names);
    let renewed = cert_serial(&work, &live.join("cert.pem"));
    assert_ne!(first, renewed, "renew kept the old certificate");

    // Revocation by the account that ordered it; the signer's CRL lists it.
    let cert = live.join("cert.pem");
    certbot_ok(
        &a.root,
        &[
            "revoke",
            "--cert-path",
            cert.to_str().unwrap(),
            "--server",
            &a.directory,
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
        &[],
        &work,
    );
    assert_revoked(&work, &a.root, &a.server.addr, &renewed);
    assert!(
        !crl_serials(&work, &a.root, &a.server.addr).contains(&normal_serial(&first)),
        "the certificate that was only renewed, not revoked, is in the CRL"
    );
}

#[test]
fn lego_issues_over_http01() {
    let Some(a) = start("acme-lego-http") else {
        return;
    };
    let port = format!(":{}", a.http_port);
    let name = a.dns.unique_name("h");
    a.lego_run(
        &a.work("lego"),
        &name,
        &["--http", "--http.port", &port],
        &[],
    );
}

#[test]
fn lego_issues_over_tls_alpn01() {
    let Some(a) = start("acme-lego-tls") else {
        return;
    };
    let port = format!(":{}", a.tls_port);
    let name = a.dns.unique_name("t");
    a.lego_run(&a.work("lego"), &name, &["--tls", "--tls.port", &port], &[]);
}

#[test]
fn lego_issues_over_dns01_with_rfc2136_updates() {
    let Some(a) = start("acme-lego-dns") else {
        return;
    };
    let name = a.dns.unique_name("d");
    let dns_args = a.dns.lego_dns_args();
    let dns_args: Vec<&str> = dns_args.iter().map(String::as_str).collect();
    a.lego_run(&a.work("lego"), &name, &dns_args, &a.dns.lego_env());
    // lego removed its record after validation.
    assert!(a
        .dns
        .dig_short(&format!("_acme-challenge.{name}"), "TXT")
        .is_empty());
}
