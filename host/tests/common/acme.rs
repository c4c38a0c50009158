//! Helpers for the ACME tests (host/tests/acme.rs): the throwaway authoritative DNS server of
//! scripts/dns.sh (zone `acme.test`, every name in it answers 127.0.0.1, RFC 2136 updates signed
//! with its TSIG key), the ACME clients we did not write (Debian's certbot 2.1 and lego 4.9.1) run
//! non-interactively with all their state in a test directory and bounded in time, and the
//! openssl checks of what they obtained (chain, exact SANs, serial in the signer's CRL).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{http, openssl_ok, serial_of};

/// How long one certbot, lego, nsupdate or dig run may take, in seconds (`timeout` stops it then,
/// and kills it 10 s later; its exit status is then 124 or 137).
pub const CLIENT_TIMEOUT_SECS: u32 = 120;

/// The e-mail address lego registers its accounts with (lego refuses to run without one).
pub const LEGO_EMAIL: &str = "acme-tests@acme.test";

const RUN_VIA: &str = "run the tests via scripts/test.sh, or first \
                       `eval \"$(bash scripts/dns.sh start)\"` in this shell";

/// The test DNS server scripts/dns.sh started, as its `WASM_PKI_DNS_*` variables name it.
#[derive(Clone, Debug)]
pub struct Dns {
    /// Its directory (config, zone, journal, `named.log`).
    pub dir: PathBuf,
    /// `127.0.0.1:PORT` (UDP and TCP).
    pub addr: String,
    pub port: u16,
    /// `acme.test` (no trailing dot).
    pub zone: String,
    /// The TSIG key's name (no trailing dot).
    pub tsig_name: String,
    /// The key's name as a domain name (trailing dot), the form lego's RFC2136_TSIG_KEY takes
    /// (newer lego makes it one itself; this does not rely on that).
    pub tsig_name_fqdn: String,
    /// The TSIG key, base64.
    pub tsig_secret: String,
    /// `hmac-sha256`.
    pub tsig_alg: String,
    /// The algorithm as a domain name (`hmac-sha256.`), the form lego's RFC2136_TSIG_ALGORITHM takes.
    pub tsig_alg_fqdn: String,
}

impl Dns {
    /// The server named by `WASM_PKI_DNS_DIR`, `_ADDR`, `_PORT`, `_ZONE`, `_TSIG_NAME`,
    /// `_TSIG_SECRET` and `_TSIG_ALG`, or None (after saying how to start one) when none is set.
    /// Under CI (`CI` set) there must be one: this panics instead of letting the tests skip, and
    /// it panics whenever only some of the variables are set.
    pub fn from_env() -> Option<Dns> {
        const VARS: [&str; 7] = [
            "WASM_PKI_DNS_DIR",
            "WASM_PKI_DNS_ADDR",
            "WASM_PKI_DNS_PORT",
            "WASM_PKI_DNS_ZONE",
            "WASM_PKI_DNS_TSIG_NAME",
            "WASM_PKI_DNS_TSIG_SECRET",
            "WASM_PKI_DNS_TSIG_ALG",
        ];
        let vals: Vec<Option<String>> = VARS
            .iter()
            .map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .collect();
        if vals.iter().all(Option::is_none) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the ACME tests against the test DNS server: {RUN_VIA}"
            );
            eprintln!("skipped: no test DNS server (WASM_PKI_DNS_* unset); {RUN_VIA}");
            return None;
        }
        let unset: Vec<&str> = VARS
            .iter()
            .zip(&vals)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        assert!(
            unset.is_empty(),
            "the test DNS server's variables are incomplete ({unset:?} unset): {RUN_VIA}"
        );
        let mut vals = vals.into_iter().map(Option::unwrap);
        let mut next = || vals.next().unwrap();
        let (dir, addr, port) = (PathBuf::from(next()), next(), next());
        let port = port
            .parse()
            .unwrap_or_else(|_| panic!("WASM_PKI_DNS_PORT={port:?} is not a port"));
        let (zone, tsig_name, tsig_secret, tsig_alg) = (next(), next(), next(), next());
        let tsig_name = tsig_name.trim_end_matches('.').to_string();
        let tsig_name_fqdn = format!("{tsig_name}.");
        let tsig_alg_fqdn = format!("{}.", tsig_alg.trim_end_matches('.'));
        Some(Dns {
            dir,
            addr,
            port,
            zone: zone.trim_end_matches('.').to_string(),
            tsig_name,
            tsig_name_fqdn,
            tsig_secret,
            tsig_alg,
            tsig_alg_fqdn,
        })
    }

    /// A fresh name under the zone, `PREFIX-<random hex>.acme.test`, so that tests sharing the
    /// server (and records a killed run left behind) never meet.
    pub fn unique_name(&self, prefix: &str) -> String {
        let mut rnd = [0u8; 4];
        getrandom::fill(&mut rnd).unwrap();
        format!("{prefix}-{}.{}", wasm_pki::hex(&rnd), self.zone)
    }

    /// Send one RFC 2136 update signed with the TSIG key (`nsupdate -y ALG:NAME:SECRET`):
    /// `commands` are nsupdate lines such as `update add NAME 60 TXT "v"` or
    /// `update delete NAME TXT`; the `server`, `zone` and `send` lines are added here.
    pub fn nsupdate(&self, commands: &str) -> Output {
        self.nsupdate_with_key(&self.tsig_secret, commands)
    }

    /// [`Dns::nsupdate`] signed with another secret (a refused update, for negative tests).
    pub fn nsupdate_with_key(&self, secret: &str, commands: &str) -> Output {
        let key = format!("{}:{}:{secret}", self.tsig_alg, self.tsig_name);
        let script = format!(
            "server 127.0.0.1 {}\nzone {}.\n{}\nsend\n",
            self.port,
            self.zone,
            commands.trim_end()
        );
        run_with_stdin(
            bounded("nsupdate").args(["-t", "10", "-y", &key]),
            script.as_bytes(),
        )
    }

    /// [`Dns::nsupdate`], panicking with nsupdate's output and the tail of `named.log` if the
    /// update is not accepted.
    pub fn nsupdate_ok(&self, commands: &str) {
        let out = self.nsupdate(commands);
        assert!(
            out.status.success(),
            "{}",
            failure_report(
                &format!("nsupdate {commands:?}"),
                &out,
                Some(&self.dir.join("named.log"))
            )
        );
    }

    /// `dig +short NAME TYPE` asked of this server (over UDP, no recursion): one answer per item.
    pub fn dig_short(&self, name: &str, rtype: &str) -> Vec<String> {
        let port = self.port.to_string();
        let out = bounded("dig")
            .args(["@127.0.0.1", "-p", &port, "+short", "+norecurse", "+time=2"])
            .args(["+tries=2", name, rtype])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            failure_report(&format!("dig {name} {rtype}"), &out, None)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The environment of lego's `rfc2136` DNS provider for this server.
    pub fn lego_env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("RFC2136_NAMESERVER", self.addr.as_str()),
            ("RFC2136_TSIG_KEY", self.tsig_name_fqdn.as_str()),
            ("RFC2136_TSIG_SECRET", self.tsig_secret.as_str()),
            ("RFC2136_TSIG_ALGORITHM", self.tsig_alg_fqdn.as_str()),
        ]
    }

    /// lego's global options for dns-01 through this server: the `rfc2136` provider, this server
    /// as the resolver lego finds the zone with, and no propagation check (there is one server).
    pub fn lego_dns_args(&self) -> Vec<String> {
        [
            "--dns",
            "rfc2136",
            "--dns.disable-cp",
            "--dns.resolvers",
            self.addr.as_str(),
        ]
        .map(String::from)
        .to_vec()
    }
}

/// `timeout -k 10 CLIENT_TIMEOUT_SECS PROGRAM`.
fn bounded(program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "10", &CLIENT_TIMEOUT_SECS.to_string(), program]);
    cmd
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// What a failed client run says: `what` (the command), its exit status (124 or 137: timed
/// out), stdout, stderr and the last 80 lines of `log` (certbot's `letsencrypt.log`, named's
/// log) when given.
pub fn failure_report(what: &str, out: &Output, log: Option<&Path>) -> String {
    let timed_out = matches!(out.status.code(), Some(124 | 137));
    let mut text = format!(
        "{what} failed: {}{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        if timed_out {
            format!(" (timed out after {CLIENT_TIMEOUT_SECS} s)")
        } else {
            String::new()
        },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if let Some(log) = log {
        let body = std::fs::read_to_string(log).unwrap_or_else(|e| format!("(unreadable: {e})"));
        let lines: Vec<&str> = body.lines().collect();
        let tail = &lines[lines.len().saturating_sub(80)..];
        text.push_str(&format!(
            "\n--- last {} lines of {}\n{}",
            tail.len(),
            log.display(),
            tail.join("\n")
        ));
    }
    text
}

fn has_option(args: &[&str], long: &str, short: &str) -> bool {
    args.iter()
        .any(|a| *a == long || *a == short || a.starts_with(&format!("{long}=")))
}

/// Run certbot (bounded by [`CLIENT_TIMEOUT_SECS`]) with `args` (a subcommand and its options,
/// e.g. `certonly --standalone --server URL -d NAME`), trusting only the PEM root at `root`
/// (`REQUESTS_CA_BUNDLE`), plus `env`. Its state lives under `workdir` (`--config-dir
/// workdir/config`, `--work-dir workdir/work`, `--logs-dir workdir/logs`); it runs
/// `--non-interactive --agree-tos --no-eff-email`, and `--register-unsafely-without-email`
/// unless `args` give `--email`/`-m`. On failure, show [`certbot_report`].
pub fn certbot(root: &Path, args: &[&str], env: &[(&str, &str)], workdir: &Path) -> Output {
    std::fs::create_dir_all(workdir).unwrap();
    let dir = |n: &str| workdir.join(n);
    let mut cmd = bounded("certbot");
    cmd.args(args)
        .arg("--config-dir")
        .arg(dir("config"))
        .arg("--work-dir")
        .arg(dir("work"))
        .arg("--logs-dir")
        .arg(dir("logs"))
        .args(["--non-interactive", "--agree-tos", "--no-eff-email"]);
    if !has_option(args, "--email", "-m") {
        cmd.arg("--register-unsafely-without-email");
    }
    cmd.env("REQUESTS_CA_BUNDLE", root)
        .envs(env.iter().copied())
        .current_dir(workdir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// certbot's log file for the state in `workdir`.
pub fn certbot_log(workdir: &Path) -> PathBuf {
    workdir.join("logs/letsencrypt.log")
}

/// [`failure_report`] for a certbot run in `workdir` (with the tail of its log file).
pub fn certbot_report(args: &[&str], out: &Output, workdir: &Path) -> String {
    failure_report(
        &format!("certbot {}", args.join(" ")),
        out,
        Some(&certbot_log(workdir)),
    )
}

/// [`certbot`], panicking with [`certbot_report`] unless it succeeds; returns stdout and stderr.
pub fn certbot_ok(root: &Path, args: &[&str], env: &[(&str, &str)], workdir: &Path) -> String {
    let out = certbot(root, args, env, workdir);
    assert!(
        out.status.success(),
        "{}",
        certbot_report(args, &out, workdir)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where certbot keeps the certificate it calls `name` (its first `-d`): `cert.pem`, `chain.pem`,
/// `fullchain.pem`, `privkey.pem`.
pub fn certbot_live(workdir: &Path, name: &str) -> PathBuf {
    workdir.join("config/live").join(name)
}

/// Run lego (bounded by [`CLIENT_TIMEOUT_SECS`]) trusting only the PEM root at `root`
/// (`LEGO_CA_CERTIFICATES`), plus `env`, with its state in `workdir/.lego` (`--path`),
/// `--accept-tos` and `--email` [`LEGO_EMAIL`] unless `args` give one. lego takes its options
/// before the command: `args` are global options then the command, e.g. `--server URL --http
/// --http.port :PORT -d NAME run`. lego logs to stderr; on failure, show [`lego_report`].
pub fn lego(root: &Path, args: &[&str], env: &[(&str, &str)], workdir: &Path) -> Output {
    std::fs::create_dir_all(workdir).unwrap();
    let mut cmd = bounded("lego");
    cmd.arg("--path")
        .arg(workdir.join(".lego"))
        .arg("--accept-tos");
    if !has_option(args, "--email", "-m") {
        cmd.args(["--email", LEGO_EMAIL]);
    }
    cmd.args(args)
        .env("LEGO_CA_CERTIFICATES", root)
        .envs(env.iter().copied())
        .current_dir(workdir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`failure_report`] for a lego run (its log is its stderr).
pub fn lego_report(args: &[&str], out: &Output) -> String {
    failure_report(&format!("lego {}", args.join(" ")), out, None)
}

/// [`lego`], panicking with [`lego_report`] unless it succeeds; returns stdout and stderr.
pub fn lego_ok(root: &Path, args: &[&str], env: &[(&str, &str)], workdir: &Path) -> String {
    let out = lego(root, args, env, workdir);
    assert!(out.status.success(), "{}", lego_report(args, &out));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The certificate lego obtained for `name` (its first `-d`) in `workdir`: the `.crt` file (the
/// leaf first, then the chain, unless `--no-bundle`) and the `.issuer.crt` file. lego writes a
/// wildcard's `*` as `_`.
pub fn lego_cert(workdir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = workdir.join(".lego/certificates");
    let file = name.replace('*', "_");
    (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.issuer.crt")),
    )
}

/// `openssl verify -CAfile ROOT [-untrusted CHAIN] CERT` succeeds: the first certificate in
/// `cert` chains to `root` (through `chain` when it holds certificates).
pub fn verify_cert(root: &Path, cert: &Path, chain: Option<&Path>) {
    let mut args = vec!["verify", "-CAfile", root.to_str().unwrap()];
    let has_certs = chain
        .is_some_and(|c| std::fs::read_to_string(c).is_ok_and(|t| t.contains("BEGIN CERTIFICATE")));
    if let (Some(c), true) = (chain, has_certs) {
        args.extend_from_slice(&["-untrusted", c.to_str().unwrap()]);
    }
    args.push(cert.to_str().unwrap());
    let text = openssl_ok(cert.parent().unwrap(), &args);
    assert!(text.contains(": OK"), "openssl {args:?}: {text}");
}

/// The subjectAltName entries of the first certificate in `cert` as openssl prints them
/// (`DNS:a.acme.test`, `IP Address:127.0.0.1`), sorted.
pub fn san_entries(cert: &Path) -> Vec<String> {
    let text = openssl_ok(
        cert.parent().unwrap(),
        &[
            "x509",
            "-in",
            cert.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    let mut names: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .skip(1)
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    names.sort();
    names
}

/// The certificate in `cert` chains to `root` ([`verify_cert`]) and names exactly the DNS
/// names `names` in its subjectAltName, nothing else.
pub fn assert_issued(root: &Path, cert: &Path, chain: Option<&Path>, names: &[&str]) {
    verify_cert(root, cert, chain);
    let mut want: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    want.sort();
    assert_eq!(
        san_entries(cert),
        want,
        "subjectAltName of {}",
        cert.display()
    );
}

/// The serial of the first certificate in `cert`, lower-case hex as the ledger writes it
/// (common's `serial_of`; `work` is a scratch directory).
pub fn cert_serial(work: &Path, cert: &Path) -> String {
    serial_of(work, &std::fs::read_to_string(cert).unwrap())
}

/// A serial in the form used for comparisons: lower-case hex without leading zeros or colons.
pub fn normal_serial(s: &str) -> String {
    let s = s.trim().replace(':', "").to_ascii_lowercase();
    let s = s.trim_start_matches('0');
    if s.is_empty() {
        "0".into()
    } else {
        s.into()
    }
}

/// The serials the signer at `addr` lists in its CRL (`GET /v1/crl`, PEM), after
/// `openssl crl -CAfile ROOT` checked the CRL's signature; normalised (lower-case hex, no leading
/// zeros). `work` is a scratch directory (the CRL is written to `crl.pem` there).
pub fn crl_serials(work: &Path, root: &Path, addr: &str) -> Vec<String> {
    let resp = http(addr, "GET", "/v1/crl", &[], b"").unwrap();
    assert_eq!(resp.status, 200, "GET /v1/crl: {}", resp.body);
    let file = work.join("crl.pem");
    std::fs::write(&file, &resp.body).unwrap();
    let text = openssl_ok(
        work,
        &[
            "crl",
            "-in",
            file.to_str().unwrap(),
            "-CAfile",
            root.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    );
    assert!(text.contains("verify OK"), "openssl crl: {text}");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number:"))
        .map(normal_serial)
        .collect()
}

/// The signer at `addr` lists `serial` (hex, any case or leading zeros) in its CRL.
pub fn assert_revoked(work: &Path, root: &Path, addr: &str, serial: &str) {
    let listed = crl_serials(work, root, addr);
    assert!(
        listed.contains(&normal_serial(serial)),
        "serial {serial} not in the CRL: {listed:?}"
    );
}
