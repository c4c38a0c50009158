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

// ---------------------------------------------------------------------------------------------
// A tiny raw ACME client, for what no real client sends: hand-made JWS envelopes (any header,
// any signature), any content type, any method, and a look at every answer's headers.

/// base64url without padding (RFC 8555 §6.1).
pub fn b64(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

/// The bytes of a base64url (unpadded) text.
pub fn unb64(text: &str) -> Vec<u8> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::decode_vec(text.trim())
        .unwrap_or_else(|e| panic!("not base64url ({e}): {text}"))
}

/// An ES256 (P-256) account key, signed with ring.
pub struct AcmeKey {
    pair: ring::signature::EcdsaKeyPair,
    /// The key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
}

impl AcmeKey {
    /// A fresh P-256 key.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        Self::from_pkcs8(doc.as_ref())
    }

    /// The P-256 key in `pkcs8` (DER), e.g. instant-acme's `key_pkcs8`.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Self {
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .expect("a P-256 PKCS#8 key");
        AcmeKey {
            pair,
            pkcs8: pkcs8.to_vec(),
        }
    }

    /// The public key as a JWK (RFC 7518 §6.2), its members in the RFC 7638 order.
    pub fn jwk(&self) -> serde_json::Value {
        use ring::signature::KeyPair;
        let point = self.pair.public_key().as_ref();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        serde_json::json!({
            "crv": "P-256",
            "kty": "EC",
            "x": b64(&point[1..33]),
            "y": b64(&point[33..]),
        })
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        // serde_json keeps object members sorted (no preserve_order): the canonical form.
        let canonical = serde_json::to_string(&self.jwk()).unwrap();
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// An ES256 signature (r‖s, 64 bytes) of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&ring::rand::SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The key authorization of a challenge `token` (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }
}

/// The dns-01 TXT value of a key authorization (base64url SHA-256).
pub fn dns01_value(key_authorization: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes()).as_ref())
}

/// A flattened JWS `{protected, payload, signature}` (serialised) with the header `protected`
/// as given (any members) and `payload` (None: the empty payload of a POST-as-GET), its
/// signature made by `sign` over the signing input.
pub fn jws_with(
    protected: &serde_json::Value,
    payload: Option<&[u8]>,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let p64 = b64(serde_json::to_string(protected).unwrap().as_bytes());
    let payload64 = payload.map(b64).unwrap_or_default();
    let signature = sign(format!("{p64}.{payload64}").as_bytes());
    serde_json::to_vec(&serde_json::json!({
        "protected": p64,
        "payload": payload64,
        "signature": b64(&signature),
    }))
    .unwrap()
}

/// [`jws_with`] signed by `key` (ES256).
pub fn jws(key: &AcmeKey, protected: &serde_json::Value, payload: Option<&[u8]>) -> Vec<u8> {
    jws_with(protected, payload, |m| key.sign(m))
}

/// An HTTP answer with its headers.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    /// Header names lower-case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// The problem document's `type` without `urn:ietf:params:acme:error:` (or the whole
    /// `type` when it is another namespace's; "" when there is none).
    pub fn problem_type(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let t = v["type"].as_str().unwrap_or_default();
        t.strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(t)
            .to_string()
    }
}

/// A raw ACME client of the directory at `directory` (`https://ADDR/acme/NAME/directory`)
/// served by the signer at `addr` (the common helpers' TLS trust for it).
pub struct RawAcme {
    pub addr: String,
    /// The directory object.
    pub dir: serde_json::Value,
}

impl RawAcme {
    pub fn new(addr: &str, directory: &str) -> Self {
        let mut c = RawAcme {
            addr: addr.to_string(),
            dir: serde_json::Value::Null,
        };
        let r = c.request("GET", directory, None, b"");
        assert_eq!(r.status, 200, "GET {directory}: {}", r.text());
        c.dir = r.json();
        c
    }

    /// The directory's URL for `resource` (`newNonce`, `newAccount`, `newOrder`, `keyChange`…).
    pub fn url(&self, resource: &str) -> String {
        self.dir[resource]
            .as_str()
            .unwrap_or_else(|| panic!("no {resource} in the directory {}", self.dir))
            .to_string()
    }

    /// One request to `url` (an `https://ADDR/…` URL of this signer) on a fresh connection,
    /// with `content_type` when given.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> RawResp {
        use std::io::Write;
        let path = url
            .strip_prefix(&format!("https://{}", self.addr))
            .unwrap_or_else(|| panic!("{url} is not on {}", self.addr));
        let mut s = super::connect(&self.addr).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = content_type {
            head.push_str(&format!("Content-Type: {t}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer a body it will not read and close: that is its answer.
        let _ = s.write_all(body);
        let _ = s.flush();
        let raw = super::read_all(&mut *s).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{method} {url}: no HTTP answer: {raw:?}"));
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.get(9..12))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        RawResp {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    /// A fresh nonce (`HEAD newNonce`).
    pub fn nonce(&self) -> String {
        let r = self.request("HEAD", &self.url("newNonce"), None, b"");
        assert_eq!(r.status, 200, "HEAD newNonce");
        r.header("replay-nonce")
            .expect("newNonce answered without Replay-Nonce")
            .to_string()
    }

    /// POST `body` as `application/jose+json` to `url`.
    pub fn post_raw(&self, url: &str, body: &[u8]) -> RawResp {
        self.request("POST", url, Some("application/jose+json"), body)
    }

    /// newAccount signed by `key` (its `jwk` in the header) with `payload`; returns the answer
    /// and, when it made or found one, the account.
    pub fn new_account(
        &self,
        key: AcmeKey,
        payload: &serde_json::Value,
    ) -> (RawResp, Option<RawAccount<'_>>) {
        let url = self.url("newAccount");
        let protected = serde_json::json!({
            "alg": "ES256", "nonce": self.nonce(), "url": url, "jwk": key.jwk(),
        });
        let r = self.post_raw(
            &url,
            &jws(&key, &protected, Some(payload.to_string().as_bytes())),
        );
        let account = match (r.status, r.header("location")) {
            (200 | 201, Some(loc)) => Some(RawAccount {
                acme: self,
                key,
                url: loc.to_string(),
            }),
            _ => None,
        };
        (r, account)
    }

    /// A new account (no contact, terms agreed) for a fresh key, or a panic.
    pub fn account(&self) -> RawAccount<'_> {
        let (r, a) = self.new_account(
            AcmeKey::generate(),
            &serde_json::json!({"termsOfServiceAgreed": true}),
        );
        assert_eq!(r.status, 201, "newAccount: {}", r.text());
        a.unwrap()
    }
}

/// An account of a [`RawAcme`] directory: its key and URL (its `kid`).
pub struct RawAccount<'a> {
    pub acme: &'a RawAcme,
    pub key: AcmeKey,
    pub url: String,
}

impl RawAccount<'_> {
    /// The protected header of a request to `url` by this account (`kid`), with a fresh nonce.
    pub fn header(&self, url: &str) -> serde_json::Value {
        serde_json::json!({
            "alg": "ES256", "nonce": self.acme.nonce(), "url": url, "kid": self.url,
        })
    }

    /// POST `payload` (None: POST-as-GET) to `url`, signed by this account.
    pub fn post(&self, url: &str, payload: Option<&serde_json::Value>) -> RawResp {
        let payload = payload.map(|p| p.to_string());
        let body = jws(
            &self.key,
            &self.header(url),
            payload.as_deref().map(str::as_bytes),
        );
        self.acme.post_raw(url, &body)
    }

    /// POST-as-GET `url`, which must answer 200.
    pub fn get(&self, url: &str) -> RawResp {
        let r = self.post(url, None);
        assert_eq!(r.status, 200, "POST-as-GET {url}: {}", r.text());
        r
    }

    /// newOrder for the DNS names `names`: the answer (201 with the order and `Location`).
    pub fn new_order(&self, names: &[&str]) -> RawResp {
        let ids: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"type": "dns", "value": n}))
            .collect();
        self.post(
            &self.acme.url("newOrder"),
            Some(&serde_json::json!({ "identifiers": ids })),
        )
    }

    /// [`RawAccount::new_order`], which must succeed: the order URL and object.
    pub fn order(&self, names: &[&str]) -> (String, serde_json::Value) {
        let r = self.new_order(names);
        assert_eq!(r.status, 201, "newOrder {names:?}: {}", r.text());
        (
            r.header("location")
                .expect("newOrder without Location")
                .to_string(),
            r.json(),
        )
    }

    /// The first authorization of `order` (the object): its URL and object.
    pub fn first_authz(&self, order: &serde_json::Value) -> (String, serde_json::Value) {
        let url = order["authorizations"][0]
            .as_str()
            .expect("an authorization")
            .to_string();
        let authz = self.get(&url).json();
        (url, authz)
    }

    /// Poll the authorization at `url` (POST-as-GET) until it leaves pending/processing, for at
    /// most `timeout`; returns it.
    pub fn wait_authz(&self, url: &str, timeout: std::time::Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let authz = self.get(url).json();
            let status = authz["status"].as_str().unwrap_or_default();
            let busy = status == "pending"
                && authz["challenges"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["status"] == "processing"));
            if !(busy || status == "processing") {
                return authz;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "authorization {url} still {status} after {timeout:?}: {authz}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// The challenge of type `kind` in an authorization object.
pub fn challenge<'v>(authz: &'v serde_json::Value, kind: &str) -> &'v serde_json::Value {
    authz["challenges"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} challenge in {authz}"))
}

// ---------------------------------------------------------------------------------------------
// Challenge servers the tests run on the directory's validation ports.

/// A raw HTTP/1.1 answer: the status line, `headers`, Content-Length, `Connection: close`, the
/// body.
pub fn http_answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain HTTP server on `127.0.0.1:PORT` (a thread), answering every request with what
/// `answer` gives for its path; stops when dropped. Hold the tests' port lock while it lives.
pub struct HttpResponder {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The paths asked for, in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpResponder {
    pub fn start(port: u16, answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = {
            let mut tries = 0;
            loop {
                match std::net::TcpListener::bind(("127.0.0.1", port)) {
                    Ok(l) => break l,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        let _ = e;
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    Err(e) => panic!("listen on 127.0.0.1:{port}: {e}"),
                }
            }
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split(' ').nth(1).unwrap_or_default().to_string();
                if path.is_empty() {
                    continue;
                }
                seen2.lock().unwrap().push(path.clone());
                // The validator may stop reading (a body over its limit): no matter.
                let _ = conn.write_all(&answer(&path));
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
        });
        HttpResponder {
            port,
            stop,
            thread: Some(thread),
            seen,
        }
    }

    /// Answer `GET /.well-known/acme-challenge/TOKEN` with `key_authorization`, 404 otherwise.
    pub fn key_authorization(port: u16, token: &str, key_authorization: &str) -> Self {
        let want = format!("/.well-known/acme-challenge/{token}");
        let ka = key_authorization.as_bytes().to_vec();
        Self::start(port, move |path| {
            if path == want {
                http_answer(200, &[("Content-Type", "text/plain")], &ka)
            } else {
                http_answer(404, &[], b"not found")
            }
        })
    }
}

impl Drop for HttpResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `openssl s_server` on `127.0.0.1:PORT` offering ALPN `acme-tls/1` with the certificate and
/// key files given (killed when dropped), once it accepts connections.
pub fn openssl_alpn_server(port: u16, cert: &Path, key: &Path) -> super::KillOnDrop {
    let accept = format!("127.0.0.1:{port}");
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &accept,
            "-alpn",
            "acme-tls/1",
            "-cert",
        ])
        .arg(cert)
        .arg("-key")
        .arg(key)
        // Its stdin stays open (held by the child handle): s_server keeps serving.
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = super::KillOnDrop(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not listen on {accept}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    guard
}

/// `wasm-pki list --dir DIR`: how many certificates the ledger holds that name `name` (a DNS
/// name) among their SANs.
pub fn ledger_count(ca: &Path, name: &str) -> usize {
    super::cli_ok(&["list", "--dir", ca.to_str().unwrap()])
        .lines()
        .filter(|l| {
            l.split('\t').nth(2).is_some_and(|names| {
                names
                    .split(',')
                    .any(|n| n == name || n.rsplit(':').next() == Some(name))
            })
        })
        .count()
}

/// `wasm-pki list --dir DIR`: how many certificates the ledger holds that were issued on the
/// token whose id is `token` (`token=ID`).
pub fn ledger_count_token(ca: &Path, token: &str) -> usize {
    let want = format!("token={token}");
    super::cli_ok(&["list", "--dir", ca.to_str().unwrap()])
        .lines()
        .filter(|l| l.split('\t').any(|f| f == want))
        .count()
}

/// A CSR (DER) made by `openssl req -new` with a fresh P-256 key in `work`, the subject CN `cn`
/// and the extensions `addext` (`subjectAltName=DNS:…`, `basicConstraints=critical,CA:TRUE`).
pub fn openssl_csr_der(work: &Path, file: &str, cn: &str, addext: &[&str]) -> Vec<u8> {
    let key = format!("{file}.key");
    let csr = format!("{file}.der");
    let subj = format!("/CN={cn}");
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        &subj,
        "-outform",
        "DER",
        "-out",
        &csr,
    ];
    for e in addext {
        args.extend_from_slice(&["-addext", e]);
    }
    openssl_ok(work, &args);
    std::fs::read(work.join(csr)).unwrap()
}

/// A self-signed certificate and key (PEM files in `work`) for the DNS name `name`, without
/// the acmeIdentifier extension.
pub fn openssl_self_signed(work: &Path, file: &str, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        work.join(format!("{file}.crt")),
        work.join(format!("{file}.key")),
    );
    let subj = format!("/CN={name}");
    let san = format!("subjectAltName=DNS:{name}");
    openssl_ok(
        work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &subj,
            "-addext",
            &san,
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    (cert, key)
}
