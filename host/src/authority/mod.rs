//! The authority (`authority/`, as step-ca's): authorizes and signs. A credential (an enrolment
//! token, or the operator at the CLI) names a profile and an identity; the profile comes from the
//! policy; the CSR goes to the sandbox; the certificate is recorded in the ledger before anyone
//! sees it. Token uses are reserved, spent with the record, or refunded here. It knows nothing of
//! HTTP: its refusals are [`AuthorityError`]s, which the API maps to status codes.

pub mod acme;
pub mod agent;
pub mod entries;
mod error;
mod keystore;
pub mod policy;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasm_pki::protocol::{
    self, CrlRequest, LoadCa, Loaded, Request, RevokedEntry, Seed, SignRequest,
};

pub use error::AuthorityError;

use crate::db::{Ledger, LedgerSpec, Record, TokenRefusal};
use crate::sandbox::{CallError, Sandbox, Verifier};
use policy::Policy;
use wasm_pki::Profile;

/// Largest CSR accepted (PEM text), checked before it enters the sandbox.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// How long a request waits for a free sandbox instance before it is refused as busy.
pub const SANDBOX_WAIT: Duration = Duration::from_secs(2);

/// What a successful signing returns.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    /// Leaf PEM.
    pub certificate: String,
    /// Issuing CA and any intermediates above it, PEM each.
    pub chain: Vec<String>,
    /// The root CA PEM.
    pub ca: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When to renew, Unix seconds.
    pub renew_after: i64,
    /// Serial, hex.
    pub serial: String,
}

/// What a caller may ask for beyond the CSR (a Vault client's `ttl` and `alt_names`…): checked by
/// the profile like the CSR's own requests, never trusted for identity.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// Requested lifetime, seconds; the profile's default when absent.
    pub lifetime_secs: Option<u64>,
    /// Names asked for outside the CSR.
    pub extra_names: Vec<wasm_pki::SanName>,
    /// The names the certificate must carry exactly (an ACME order's identifiers).
    pub exact_names: Option<Vec<wasm_pki::SanName>>,
    /// An object that moves in the record's transaction (the ACME order made valid by it).
    pub then: Option<Then>,
}

/// An ACME object that must move in the same transaction as a certificate's record (an order
/// made valid by it: one commit, and never a valid order without its certificate or a recorded
/// certificate whose order was finalized by another request), made from the serial.
#[derive(Clone)]
pub struct Then(pub Arc<ThenFn>);

/// What a [`Then`] runs: the object's new row for the certificate's serial.
pub type ThenFn = dyn Fn(&str) -> Result<crate::db::AcmeRow, String> + Send + Sync;

impl std::fmt::Debug for Then {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Then(..)")
    }
}

/// A token's state as `lookup-self` reports it.
#[derive(Clone, Debug)]
pub struct TokenState {
    /// Public id (never the secret).
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// The identity it vouches for, if any.
    pub identity: Option<String>,
    /// Seconds until it expires (0 once expired).
    pub ttl_secs: i64,
    /// Uses left.
    pub uses_left: i64,
    /// Creation, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Paths of a CA data directory.
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// Issuing CA certificate, followed by its chain.
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    /// Issuing CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// The JWT authority's P-256 key (JWT-SVIDs), encrypted like the CA key when that is.
    pub fn jwt_key(&self) -> PathBuf {
        self.0.join("jwt.key")
    }
    /// Root certificate (the trust anchor clients install).
    pub fn root_cert(&self) -> PathBuf {
        self.0.join("root.pem")
    }
    /// Root key (kept only when an intermediate issues; move it offline).
    pub fn root_key(&self) -> PathBuf {
        self.0.join("root.key")
    }
    /// The ledger.
    pub fn ledger(&self) -> PathBuf {
        self.0.join("ledger.sqlite")
    }
    /// Compiled-module cache.
    pub fn module_cache(&self) -> PathBuf {
        self.0.join("module-cache")
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn seed() -> Result<Seed, AuthorityError> {
    let mut s = Seed([0; 32]);
    getrandom::fill(&mut s.0).map_err(|e| AuthorityError::Internal(format!("OS RNG: {e}")))?;
    Ok(s)
}

/// How long a repeated attested request can get the certificate already issued (see
/// [`Authority::sign_attested`]).
pub const ATTESTED_RETRY_WINDOW_SECS: i64 = 300;

/// A serial the ledger does not know (or, with `revoke` without lineage, that is already revoked).
#[derive(Debug)]
pub struct NoSuchSerial(pub String);

impl std::fmt::Display for NoSuchSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoSuchSerial {}

/// A revocation reason that is not an RFC 5280 CRLReason code.
#[derive(Debug)]
pub struct InvalidReason(pub String);

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidReason {}

/// Revoke `serial`, or its whole lineage, at `now` for `reason` (an RFC 5280 CRLReason code,
/// 0-10 but 7; `None`: no reason given): the serials revoked now. Shared by the CLI (which has
/// no sandbox), the KBS plugin's admin route and ACME's revokeCert.
pub fn revoke(
    ledger: &dyn Ledger,
    serial: &str,
    lineage: bool,
    now: i64,
    reason: Option<u8>,
) -> Result<Vec<String>> {
    if let Some(code) = reason.filter(|c| !wasm_pki::crl::is_reason_code(*c)) {
        return Err(InvalidReason(format!(
            "revocation reason {code} is not an RFC 5280 CRLReason code (0-10 but 7)"
        ))
        .into());
    }
    if !lineage {
        if !ledger.revoke(serial, now, reason)? {
            return Err(
                NoSuchSerial(format!("no unrevoked certificate with serial {serial}")).into(),
            );
        }
        return Ok(vec![serial.to_ascii_lowercase()]);
    }
    let members = ledger.lineage(serial)?;
    if members.is_empty() {
        return Err(NoSuchSerial(format!("no certificate with serial {serial}")).into());
    }
    let mut done = Vec::new();
    for s in members {
        if ledger.revoke(&s, now, reason)? {
            done.push(s);
        }
    }
    Ok(done)
}

/// Who vouches for a request, and so which profile and identity it gets.
enum Credential<'a> {
    /// A token's grant: its id (never the secret), profile and bound identity.
    Token(&'a crate::db::Grant),
    /// The operator at the CLI.
    Operator {
        profile: &'a str,
        identity: Option<&'a str>,
    },
    /// The signer itself, for its HTTPS listener: a built-in profile and a lifetime.
    Listener { profile: &'a Profile, lifetime: u64 },
    /// An attestation KBS verified: where it came from, the policy's profile (by name, and
    /// narrowed to the identity) and the identity KBS's policy bound.
    Attested {
        origin: &'a str,
        name: &'a str,
        profile: &'a Profile,
        identity: &'a str,
    },
    /// An ACME account without external account binding: the directory (`acme:NAME`, recorded
    /// as the credential) and its profile; the order's validated identifiers are the names.
    Acme { origin: &'a str, profile: &'a str },
}

/// The listener's own certificate, as [`Authority::issue_listener_cert`] makes it.
pub struct ListenerCert {
    /// Leaf first, then the issuing chain, DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's P-256 key, PKCS#8 DER; it never touches the disk.
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
    /// The leaf's serial, hex.
    pub serial: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// The sandbox pool an authority runs: how many instances, who verifies CSR signatures, and
/// where the CA key is.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Instances (each holds the CA; one call at a time each).
    pub instances: usize,
    /// The host (`ring`) or the guest.
    pub verifier: Verifier,
    /// The guest (`sandbox`), or a key store in the host that signs what the guest builds.
    pub key_store: crate::keys::KeyStoreSpec,
}

/// A running certificate authority: sandbox, ledger and policy.
pub struct Authority {
    /// The sandbox pool.
    pub sandbox: Arc<Sandbox>,
    ledger: Arc<dyn Ledger>,
    /// Profiles.
    pub policy: Policy,
    /// Root PEM.
    pub root_pem: String,
    /// Issuing CA PEM and its chain, as blocks.
    pub chain: Vec<String>,
    /// The issuing CA as the sandbox loaded it.
    pub ca_info: Loaded,
    /// The issuing CA certificate, DER (what AIA caIssuers points at).
    pub issuer_der: Vec<u8>,
    /// Every CA certificate this signer answers for: the issuing CA, the chain above it and the
    /// root, each once (a Vault client's `ca_chain`, the trust bundle's keys).
    pub authorities: Vec<wasm_pki::Certificate>,
    /// SHA-256 over the authorities' fingerprints: the CA set the bundle sequence is kept for.
    authorities_digest: String,
    /// The JWT authority the sandbox holds the key of (JWT-SVIDs, the bundle's `jwt-svid` key).
    pub jwt_authority: Option<wasm_pki::JwtAuthority>,
    /// The base URLs the CA is published at (`--public-url`); the first is the JWT issuer.
    pub public_urls: Vec<String>,
    /// ACME: nonce and EAB keys, the validation queue.
    acme: acme::State,
    /// The CA key when a key store in the host holds it (else the guest does).
    host_key: Option<keystore::HostKey>,
    /// The JWT authority's key, held by the host when the CA key is (else the guest holds it).
    host_jwt_key: Option<keystore::HostJwtKey>,
    /// Where the CA key is (`--key-store`; a URI's PIN is never shown).
    pub key_store: crate::keys::KeyStoreSpec,
}

impl Authority {
    /// Open the CA in `dir` with the module `module`, loading the CA into the sandbox, and the
    /// ledger `ledger` (the data directory's SQLite file, or a PostgreSQL database shared with
    /// other signers).
    /// `public_urls` are the base URLs (e.g. `http://ca.example.com:8443`) the CA is reachable at:
    /// leaves then point at `BASE/v1/crl.der` (CRL DP) and `BASE/v1/ca.der` (AIA caIssuers).
    pub fn open(
        dir: &Path,
        module: &[u8],
        policy: Policy,
        passphrase: Option<&str>,
        pool: Pool,
        public_urls: &[String],
        ledger: &LedgerSpec,
    ) -> Result<Self> {
        let d = DataDir(dir.to_path_buf());
        if !d.ca_cert().exists() {
            bail!(
                "no CA in {} (run `wasm-pki init --dir {}` first)",
                dir.display(),
                dir.display()
            );
        }
        let cert_pem = std::fs::read_to_string(d.ca_cert())
            .with_context(|| format!("reading {}", d.ca_cert().display()))?;
        let in_guest = pool.key_store == crate::keys::KeyStoreSpec::Sandbox;
        if !in_guest && pool.verifier != Verifier::Host {
            bail!("--key-store {} needs --verify host: the host signs only for CSR keys it verified itself", pool.key_store);
        }
        let key_pem = match &pool.key_store {
            crate::keys::KeyStoreSpec::Pkcs11(_) => None,
            _ => {
                let pem = zeroize::Zeroizing::new(crate::files::read_secret(&d.ca_key())?);
                if pem.contains("ENCRYPTED PRIVATE KEY") && passphrase.is_none() {
                    bail!(
                        "the CA key is encrypted: give --passphrase-file (or set WASM_PKI_PASSPHRASE_FILE)"
                    );
                }
                Some(pem)
            }
        };
        let root_pem = std::fs::read_to_string(d.root_cert()).unwrap_or_else(|_| cert_pem.clone());
        let certs = wasm_pki::Certificate::parse_all(cert_pem.as_bytes())
            .with_context(|| format!("reading {}", d.ca_cert().display()))?;
        let issuer_der = certs[0].der().to_vec();
        let chain = certs.iter().map(wasm_pki::Certificate::to_pem).collect();
        let mut authorities = certs;
        for root in wasm_pki::Certificate::parse_all(root_pem.as_bytes())
            .with_context(|| format!("reading {}", d.root_cert().display()))?
        {
            if !authorities.iter().any(|c| c.der() == root.der()) {
                authorities.push(root);
            }
        }

        let host_key = match pool.key_store.open(&d.ca_key(), passphrase)? {
            Some(key) => Some(keystore::HostKey::new(key, &issuer_der)?),
            None => None,
        };
        let jwt_key_pem = jwt_key(&d, passphrase)?;
        // With the CA key outside the guest, the JWT authority's key is too.
        let host_jwt_key = match in_guest {
            true => None,
            false => Some(keystore::HostJwtKey::from_pem(&jwt_key_pem, passphrase)?),
        };
        let sandbox = Sandbox::new(module, &d.module_cache(), pool.instances)?;
        let ca_info = sandbox
            .load_ca(LoadCa {
                cert_pem,
                // With a key store the guest never holds the key.
                key_pem: key_pem.filter(|_| in_guest).map(|k| k.to_string()),
                passphrase: passphrase.map(String::from),
                public_urls: published(public_urls),
                host_verifies: pool.verifier == Verifier::Host,
                jwt_key_pem: in_guest.then(|| jwt_key_pem.to_string()),
                jwt_public_key_pem: host_jwt_key.as_ref().map(|k| k.public_pem.clone()),
            })
            .context("the sandbox could not load the CA")?;
        if let Some(k) = &host_jwt_key {
            if ca_info.jwt_authority.as_ref().map(|j| j.kid.as_str()) != Some(k.kid.as_str()) {
                bail!("the sandbox names another JWT authority than the host's key");
            }
        }
        let jwt_authority = ca_info
            .jwt_authority
            .as_ref()
            .map(|j| wasm_pki::JwtAuthority::from_jwk(&j.jwk))
            .transpose()
            .context("the sandbox's JWT authority")?;
        // The bundle's sequence moves when the X.509 or the JWT authorities change.
        let authorities_digest = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for c in &authorities {
                h.update(c.fingerprint_sha256().as_bytes());
            }
            if let Some(j) = &jwt_authority {
                h.update(b"jwt:");
                h.update(j.kid.as_bytes());
            }
            wasm_pki::hex(&h.finalize())
        };
        let shared = matches!(ledger, LedgerSpec::Postgres(_));
        let ledger = ledger.open()?;
        // Keyed by the JWT authority's key file, which every replica of this CA holds.
        let acme = acme::State::new(&policy.acme, jwt_key_pem.as_bytes(), shared)?;
        Ok(Authority {
            sandbox,
            ledger,
            policy,
            root_pem,
            chain,
            ca_info,
            issuer_der,
            authorities,
            authorities_digest,
            jwt_authority,
            public_urls: public_urls.to_vec(),
            acme,
            host_key,
            host_jwt_key,
            key_store: pool.key_store,
        })
    }

    /// Issue for an enrolment token: the token names the profile and the identity; a use is
    /// reserved first, spent with the record, and refunded when nothing was issued.
    pub fn sign_with_token(&self, token: &str, csr_pem: &str) -> Result<Signed, AuthorityError> {
        self.spend_token(token, None, csr_pem, &Asked::default())
    }

    /// Issue for a token that must be of profile `profile` (a Vault role's, or the intermediate
    /// profile for `sign-intermediate`), with what the request asks beyond the CSR. A token of
    /// another profile is refused and its use given back.
    pub fn sign_with_token_for(
        &self,
        token: &str,
        profile: &str,
        csr_pem: &str,
        asked: &Asked,
    ) -> Result<Signed, AuthorityError> {
        self.spend_token(token, Some(profile), csr_pem, asked)
    }

    /// Reserve a use of `token`, issue (if its profile is `expected`, when given), and give the
    /// use back when nothing was issued.
    fn spend_token(
        &self,
        token: &str,
        expected: Option<&str>,
        csr_pem: &str,
        asked: &Asked,
    ) -> Result<Signed, AuthorityError> {
        if !tokens::well_formed(token) {
            return Err(AuthorityError::BadToken(
                "the token is not a wasm-pki enrolment token",
            ));
        }
        self.spend_hash(&tokens::hash(token), expected, csr_pem, asked, true)
    }

    /// [`Self::spend_token`] for the token with this hash. Without `with_identity` the token's
    /// identity is not put in the certificate (an ACME order's exact names decide, after its
    /// identifiers were held to the identity).
    fn spend_hash(
        &self,
        hash: &[u8],
        expected: Option<&str>,
        csr_pem: &str,
        asked: &Asked,
        with_identity: bool,
    ) -> Result<Signed, AuthorityError> {
        let grant = self
            .ledger
            .consume_token(hash, now())
            .map_err(|e| AuthorityError::from_ledger(e, ""))?
            .map_err(|r| match r {
                TokenRefusal::Unknown => AuthorityError::BadToken("unknown token"),
                TokenRefusal::Expired => AuthorityError::TokenExpired,
                TokenRefusal::Used => AuthorityError::TokenUsed,
            })?;
        let result = match expected {
            Some(p) if p != grant.profile => Err(AuthorityError::Forbidden(format!(
                "this token is for profile \"{}\", not \"{p}\"",
                grant.profile
            ))),
            _ if with_identity => self.sign(csr_pem, Credential::Token(&grant), asked),
            _ => {
                let unbound = crate::db::Grant {
                    identity: None,
                    ..grant.clone()
                };
                self.sign(csr_pem, Credential::Token(&unbound), asked)
            }
        };
        if result.is_err() {
            // Nothing was issued or recorded: release the reserved use so the holder can retry.
            let _ = self.ledger.refund_token(&grant.id);
        }
        result
    }

    /// A token's state, without spending a use.
    pub fn token_state(&self, token: &str) -> Result<TokenState, AuthorityError> {
        if !tokens::well_formed(token) {
            return Err(AuthorityError::BadToken(
                "the token is not a wasm-pki enrolment token",
            ));
        }
        let info = self
            .ledger
            .token_info(&tokens::hash(token))
            .map_err(|e| AuthorityError::from_ledger(e, ""))?
            .ok_or(AuthorityError::BadToken("unknown token"))?;
        let at = now();
        if info.expires_at <= at {
            return Err(AuthorityError::TokenExpired);
        }
        if info.uses_left <= 0 {
            return Err(AuthorityError::TokenUsed);
        }
        Ok(TokenState {
            id: info.grant.id,
            profile: info.grant.profile,
            identity: info.grant.identity,
            ttl_secs: info.expires_at - at,
            uses_left: info.uses_left,
            created_at: info.created_at,
            expires_at: info.expires_at,
        })
    }

    /// The SPIFFE trust bundle (a JWK Set) for [`Self::authorities`], its sequence number taken
    /// from the ledger: it grows when the set changes, never otherwise.
    pub fn trust_bundle(&self) -> Result<String, AuthorityError> {
        let sequence = self
            .ledger
            .bundle_sequence(&self.authorities_digest, now())
            .map_err(|e| AuthorityError::from_ledger(e, ""))?;
        wasm_pki::trust_bundle(
            &self.authorities,
            self.jwt_authority.as_slice(),
            sequence,
            self.policy.bundle.refresh_hint_secs,
        )
        .map_err(|e| AuthorityError::Internal(format!("the trust bundle: {e}")))
    }

    /// Issue on the operator's word (the CLI's `sign`): no token, the given profile and identity.
    pub fn sign_as_operator(
        &self,
        csr_pem: &str,
        profile: &str,
        identity: Option<&str>,
    ) -> Result<Signed, AuthorityError> {
        self.sign(
            csr_pem,
            Credential::Operator { profile, identity },
            &Asked::default(),
        )
    }

    /// Issue on an attestation KBS verified (the KBS plugin's `sign`; `origin`, e.g.
    /// `kbs:wasm-pki/sign`, is recorded as the credential): no token. The KBS resource policy bound
    /// `identity` to the TEE's claims, so the CSR may ask for that identity and nothing else,
    /// whatever name rules the profile has (its allow list is dropped, its subject comes from the
    /// identity). KBS may fail after the plugin answered (encrypting the answer) and its client
    /// then asks again: a repeat (the very same CSR, same identity, profile and origin) within
    /// [`ATTESTED_RETRY_WINDOW_SECS`] of the first issuance (or a tenth of the lifetime, if
    /// shorter) gets the certificate already issued, not a second one.
    pub fn sign_attested(
        &self,
        csr_pem: &str,
        profile_name: &str,
        identity: &str,
        origin: &str,
    ) -> Result<Signed, AuthorityError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(AuthorityError::TooLarge {
                size: csr_pem.len(),
                limit: MAX_CSR_BYTES,
            });
        }
        let profile = self
            .policy
            .profiles
            .get(profile_name)
            .ok_or_else(|| AuthorityError::UnknownProfile(profile_name.to_string()))?;
        if profile.intermediate.is_some() {
            return Err(AuthorityError::Forbidden(format!(
                "profile \"{profile_name}\" issues intermediate CAs; an attestation does not mint them"
            )));
        }
        let mut spec = profile.to_spec();
        spec.names.allow.clear();
        spec.accept_csr = false;
        spec.subject_from = wasm_pki::SubjectSource::Identity;
        let narrowed = spec
            .build()
            .map_err(|e| AuthorityError::Internal(format!("narrowing {profile_name}: {e}")))?;
        // A repeat (KBS failed after the plugin answered, and the guest asks again): a recent,
        // unrevoked certificate for this identity and profile from this origin that answered
        // exactly this CSR. Anything else, the same key asking for other names included, goes
        // through the full decision below.
        let ledger = |e: anyhow::Error| AuthorityError::from_ledger(e, "");
        let at = now();
        let digest = csr_sha256(csr_pem);
        let recent = self
            .ledger
            .recent(identity, origin, at - ATTESTED_RETRY_WINDOW_SECS)
            .map_err(ledger)?;
        for r in recent {
            let window = ATTESTED_RETRY_WINDOW_SECS.min((r.not_after - r.issued_at) / 10);
            let same_request = digest.is_some() && r.csr_sha256 == digest;
            if same_request && r.profile == profile_name && at - r.issued_at <= window {
                return Ok(Signed {
                    renew_after: wasm_pki::renew_after(r.not_before, r.not_after, 0.5)
                        .unwrap_or(r.not_after),
                    certificate: r.pem,
                    chain: self.chain.clone(),
                    ca: self.root_pem.clone(),
                    not_after: r.not_after,
                    serial: r.serial,
                });
            }
        }
        self.sign(
            csr_pem,
            Credential::Attested {
                origin,
                name: profile_name,
                profile: &narrowed,
                identity,
            },
            &Asked::default(),
        )
    }

    /// Create an enrolment token for `profile` (which the policy must have), bound to
    /// `identity` when given, for `uses` certificates, valid `ttl_secs`. The secret is returned
    /// once and stored only as a hash.
    pub fn create_token(
        &self,
        profile: &str,
        identity: Option<&str>,
        uses: u32,
        ttl_secs: i64,
    ) -> Result<tokens::Created, AuthorityError> {
        if !self.policy.profiles.contains_key(profile) {
            return Err(AuthorityError::UnknownProfile(profile.to_string()));
        }
        tokens::create(
            self.ledger.as_ref(),
            profile,
            identity,
            uses,
            ttl_secs,
            now(),
        )
        .map_err(|e| match e.downcast::<tokens::Invalid>() {
            Ok(tokens::Invalid(m)) => AuthorityError::InvalidOrder(m),
            Err(e) => AuthorityError::from_ledger(e, ""),
        })
    }

    /// Revoke `serial` (with `lineage`, everything it renewed and everything that renewed it)
    /// for `reason` (an RFC 5280 CRLReason code, listed in the CRL; `None`: no reason given);
    /// returns the serials revoked now. Unknown: [`AuthorityError::NotIssuedHere`]; a code that
    /// is not a CRLReason: [`AuthorityError::InvalidOrder`].
    pub fn revoke(
        &self,
        serial: &str,
        lineage: bool,
        reason: Option<u8>,
    ) -> Result<Vec<String>, AuthorityError> {
        revoke(self.ledger.as_ref(), serial, lineage, now(), reason).map_err(|e| match e
            .downcast::<NoSuchSerial>()
        {
            Ok(NoSuchSerial(m)) => AuthorityError::NotIssuedHere(m),
            Err(e) => match e.downcast::<InvalidReason>() {
                Ok(InvalidReason(m)) => AuthorityError::InvalidOrder(m),
                Err(e) => AuthorityError::from_ledger(e, ""),
            },
        })
    }

    /// Every certificate in the ledger, newest first.
    pub fn certificates(&self) -> Result<Vec<Record>, AuthorityError> {
        self.ledger
            .list()
            .map_err(|e| AuthorityError::from_ledger(e, ""))
    }

    /// Issue the HTTPS listener's own certificate: a fresh P-256 key made here (from the OS RNG),
    /// a CSR for `names` (the first is also the CN), signed in the sandbox under a built-in
    /// server-only profile for `lifetime`, and recorded in the ledger like every certificate.
    pub fn issue_listener_cert(
        &self,
        names: &[wasm_pki::SanName],
        lifetime: Duration,
    ) -> Result<ListenerCert, AuthorityError> {
        let internal = |e: wasm_pki::Error| AuthorityError::Internal(e.to_string());
        // The CN repeats the first DNS name (or the first address) for tools that still look there.
        let cn = names
            .iter()
            .find_map(|n| match n {
                wasm_pki::SanName::Dns(d) => Some(d.clone()),
                _ => None,
            })
            .or_else(|| {
                names.iter().find_map(|n| match n {
                    wasm_pki::SanName::Ip(ip) => Some(ip.to_string()),
                    _ => None,
                })
            })
            .ok_or_else(|| AuthorityError::Internal("the listener needs a name".into()))?;
        let mut rng = wasm_pki::SeedRng::from_seed(seed()?.0);
        let key = wasm_pki::KeyPair::generate(wasm_pki::Algorithm::P256, &mut rng);
        let csr = wasm_pki::CsrRequest {
            subject: wasm_pki::Subject::common_name(cn),
            names: names.to_vec(),
        }
        .sign(&key)
        .map_err(internal)?;
        let lifetime = lifetime.as_secs().max(1);
        let profile = wasm_pki::ProfileSpec {
            // The host made this CSR itself a line above: its names are the operator's --name.
            accept_csr: true,
            key_types: vec![wasm_pki::KeyKind::P256],
            usage: wasm_pki::Usage::Server,
            default_lifetime_secs: Some(lifetime),
            max_lifetime_secs: lifetime,
            ..Default::default()
        }
        .build()
        .map_err(internal)?;
        let signed = self.sign(
            &csr.to_pem(),
            Credential::Listener {
                profile: &profile,
                lifetime,
            },
            &Asked::default(),
        )?;
        let mut chain = vec![
            pem_rfc7468::decode_vec(signed.certificate.as_bytes())
                .map_err(|e| AuthorityError::Internal(format!("the listener certificate: {e}")))?
                .1,
        ];
        for pem in &self.chain {
            chain.push(
                pem_rfc7468::decode_vec(pem.as_bytes())
                    .map_err(|e| AuthorityError::Internal(format!("the CA chain: {e}")))?
                    .1,
            );
        }
        Ok(ListenerCert {
            chain,
            key_pkcs8: key.to_pkcs8_der().map_err(internal)?,
            serial: signed.serial,
            not_after: signed.not_after,
        })
    }

    /// Renew the certificate `presented` (DER), whose holder proved possession of its key (the
    /// TLS handshake verified it as the client certificate): a new certificate for its key and
    /// names, or, with `csr_pem`, a re-key. See [`Authority::renew_with_proof`] for the refusals.
    pub fn renew(&self, presented: &[u8], csr_pem: Option<&str>) -> Result<Signed, AuthorityError> {
        let cert = wasm_pki::Certificate::from_der(presented.to_vec()).map_err(|_| {
            AuthorityError::NotIssuedHere("the presented certificate does not parse".into())
        })?;
        self.renew_recorded(
            &cert.serial_hex(),
            &cert.fingerprint_sha256(),
            csr_pem,
            None,
        )
    }

    /// Renew the certificate a renewal proof carries, the proof standing in for the TLS client
    /// certificate: the sandbox checks its form, its signature by the certificate's key, its
    /// lifetime and that its audience is one of `audiences` (this signer's renew URLs); the
    /// ledger refuses a second use of it. Then, as for [`Authority::renew`]: refused when the
    /// certificate is not in the ledger (or differs from the record), revoked, expired beyond
    /// its profile's grace, or its profile is gone or no longer allows renewal; the current
    /// policy decides the names. No token is used; the new record names the one it renewed.
    pub fn renew_with_proof(
        &self,
        proof: &str,
        audiences: &[String],
        csr_pem: Option<&str>,
    ) -> Result<Signed, AuthorityError> {
        let request = Request::CheckProof(protocol::ProofRequest {
            proof: proof.to_string(),
            audiences: audiences.to_vec(),
            now: now(),
        });
        let checked: protocol::ProofChecked = self
            .sandbox
            .call(&request, SANDBOX_WAIT)?
            .map_err(AuthorityError::Refused)?;
        self.renew_recorded(
            &checked.serial,
            &checked.fingerprint,
            csr_pem,
            Some((&checked.jti, checked.expires_at)),
        )
    }

    /// The renewal both credentials lead to: the record of `serial` with this `fingerprint`, the
    /// checks on it, the proof's single use (`proof`: its jti and expiry), then the sandbox.
    fn renew_recorded(
        &self,
        serial: &str,
        fingerprint: &str,
        csr_pem: Option<&str>,
        proof: Option<(&str, i64)>,
    ) -> Result<Signed, AuthorityError> {
        let not_here = |m: &str| AuthorityError::NotIssuedHere(m.to_string());
        let ledger = |e: anyhow::Error| AuthorityError::from_ledger(e, "");
        let record = self
            .ledger
            .find(serial)
            .map_err(ledger)?
            .filter(|r| r.fingerprint == fingerprint)
            .ok_or_else(|| not_here("the certificate is not in this CA's ledger"))?;
        if record.revoked_at.is_some() {
            return Err(AuthorityError::Revoked);
        }
        let profile = self
            .policy
            .profiles
            .get(&record.profile)
            .ok_or_else(|| AuthorityError::ProfileRemoved(record.profile.clone()))?;
        if !profile.renewal.enabled {
            return Err(AuthorityError::RenewalDisabled(record.profile.clone()));
        }
        if now()
            > record
                .not_after
                .saturating_add(profile.renewal.expired_grace_secs as i64)
        {
            return Err(AuthorityError::CertificateExpired);
        }
        if csr_pem.is_some_and(|c| c.len() > MAX_CSR_BYTES) {
            return Err(AuthorityError::TooLarge {
                size: csr_pem.map_or(0, str::len),
                limit: MAX_CSR_BYTES,
            });
        }
        // Spent before signing, so two racing uses of one proof cannot both get through; a
        // proof whose renewal the policy then refuses is spent too (the client signs another).
        if let Some((jti, expires_at)) = proof {
            if !self
                .ledger
                .spend_proof(fingerprint, jti, expires_at, now())
                .map_err(ledger)?
            {
                return Err(AuthorityError::ProofReplayed);
            }
        }
        // The identity the original credential vouched for, and nothing more: a name the
        // certificate carries only because a profile's rules allowed it must still be allowed.
        // (Records written before identities were kept renew without one.)
        let identity = record.identity.clone();
        let at = now();
        let request = Request::Renew(Box::new(protocol::RenewRequest {
            certificate_pem: record.pem.clone(),
            csr_pem: csr_pem.map(String::from),
            profile: profile.clone(),
            identity: identity.clone(),
            lifetime_secs: None,
            now: at,
            seed: seed()?,
            renew_fraction: None,
        }));
        let recorded_key = match csr_pem {
            Some(_) => None,
            None => Some(spki_of(&record.pem).map_err(AuthorityError::Internal)?),
        };
        self.issue_in_sandbox(
            &request,
            Lineage {
                token_id: &record.token_id,
                profile: &record.profile,
                identity: identity.as_deref(),
                renewed_from: Some(&record.serial),
                csr_sha256: csr_pem.and_then(csr_sha256),
                then: None,
            },
            keystore::Bounds {
                subject: match &recorded_key {
                    Some(spki) => keystore::SubjectKey::Known(spki),
                    None => keystore::SubjectKey::Verified,
                },
                now: at,
                backdate_secs: profile.backdate_secs,
                max_lifetime_secs: profile.max_lifetime_secs,
                may_be_ca: profile.intermediate.is_some(),
            },
        )
    }

    /// Run an issuing request in the sandbox and record its certificate (see [`finish`]). With
    /// a key store in the host, what the guest asks it to sign must stay within `bounds`.
    fn issue_in_sandbox(
        &self,
        request: &Request,
        from: Lineage<'_>,
        bounds: keystore::Bounds<'_>,
    ) -> Result<Signed, AuthorityError> {
        let bytes = protocol::encode_request(request)
            .map_err(|e| AuthorityError::Internal(e.to_string()))?;
        let Some(key) = &self.host_key else {
            let reply = self.sandbox.call_bytes(&bytes, SANDBOX_WAIT)?;
            return finish(
                self.ledger.as_ref(),
                &reply,
                from,
                &self.chain,
                &self.root_pem,
            );
        };
        let done = std::cell::RefCell::new(keystore::Countersigned::default());
        let reply = self.sandbox.call_signing(
            &bytes,
            SANDBOX_WAIT,
            &mut |ask, verified| {
                let mut done = done.borrow_mut();
                key.sign_certificate(self.ledger.as_ref(), ask, verified, &bounds, &mut done)
            },
            &mut |reply| done.borrow().check_certificate(reply),
        )?;
        finish(
            self.ledger.as_ref(),
            &reply,
            from,
            &self.chain,
            &self.root_pem,
        )
    }

    fn sign(
        &self,
        csr_pem: &str,
        who: Credential<'_>,
        asked: &Asked,
    ) -> Result<Signed, AuthorityError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(AuthorityError::TooLarge {
                size: csr_pem.len(),
                limit: MAX_CSR_BYTES,
            });
        }
        let lookup = |name: &str| {
            self.policy
                .profiles
                .get(name)
                .ok_or_else(|| AuthorityError::UnknownProfile(name.to_string()))
        };
        let (token_id, profile_name, profile, identity, lifetime_secs) = match who {
            Credential::Token(g) => (
                g.id.as_str(),
                g.profile.as_str(),
                lookup(&g.profile)?,
                g.identity.as_deref(),
                None,
            ),
            Credential::Operator { profile, identity } => {
                ("operator", profile, lookup(profile)?, identity, None)
            }
            Credential::Listener { profile, lifetime } => {
                ("listener", "listener", profile, None, Some(lifetime))
            }
            Credential::Attested {
                origin,
                name,
                profile,
                identity,
            } => (origin, name, profile, Some(identity), None),
            Credential::Acme { origin, profile } => (origin, profile, lookup(profile)?, None, None),
        };
        let lifetime_secs = lifetime_secs.or(asked.lifetime_secs);
        let at = now();
        let request = Request::Sign(Box::new(SignRequest {
            csr_pem: csr_pem.to_string(),
            profile: profile.clone(),
            identity: identity.map(String::from),
            lifetime_secs,
            now: at,
            seed: seed()?,
            renew_fraction: None,
            extra_names: asked.extra_names.clone(),
            exact_names: asked.exact_names.clone(),
        }));
        self.issue_in_sandbox(
            &request,
            Lineage {
                token_id,
                profile: profile_name,
                identity,
                renewed_from: None,
                csr_sha256: csr_sha256(csr_pem),
                then: asked.then.as_ref(),
            },
            keystore::Bounds {
                subject: keystore::SubjectKey::Verified,
                now: at,
                backdate_secs: profile.backdate_secs,
                max_lifetime_secs: profile.max_lifetime_secs,
                may_be_ca: profile.intermediate.is_some(),
            },
        )
    }

    /// Whether this authority can sign now: a sandbox instance answers with the CA loaded, the
    /// ledger takes a write lock, and the key store (when the host holds the key) answers.
    pub fn ready(&self) -> Result<()> {
        self.ledger.check_writable()?;
        if let Some(key) = &self.host_key {
            key.ready()?;
        }
        let req = Request::Inspect(protocol::InspectRequest {
            pem: self.chain[0].clone(),
        });
        match self
            .sandbox
            .call::<serde_json::Value>(&req, Duration::from_secs(1))
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => bail!("the sandbox refused a health check: {e}"),
            Err(e) => bail!("{e}"),
        }
    }

    /// A fresh CRL in DER, as a CRL Distribution Point serves it.
    pub fn crl_der(&self) -> Result<Vec<u8>, AuthorityError> {
        let pem = self.crl()?;
        pem_rfc7468::decode_vec(pem.as_bytes())
            .map(|(_, der)| der)
            .map_err(|e| AuthorityError::Internal(format!("the sandbox's CRL is not PEM: {e}")))
    }

    /// A fresh CRL (PEM) listing every revoked certificate.
    pub fn crl(&self) -> Result<String, AuthorityError> {
        let ledger = |e: anyhow::Error| AuthorityError::from_ledger(e, "");
        let revoked = self
            .ledger
            .revoked()
            .map_err(ledger)?
            .into_iter()
            .map(|r| RevokedEntry {
                serial: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason,
            })
            .collect();
        let number = self.ledger.next_crl_number().map_err(ledger)?;
        let crl = CrlRequest {
            revoked,
            now: now(),
            next_update_secs: 86_400,
            number,
        };
        let Some(key) = &self.host_key else {
            return self
                .sandbox
                .call::<String>(&Request::Crl(crl), SANDBOX_WAIT)?
                .map_err(AuthorityError::Refused);
        };
        let facts = keystore::CrlFacts::of(&crl).map_err(AuthorityError::Internal)?;
        let bytes = protocol::encode_request(&Request::Crl(crl))
            .map_err(|e| AuthorityError::Internal(e.to_string()))?;
        let done = std::cell::RefCell::new(keystore::Countersigned::default());
        let reply = self.sandbox.call_signing(
            &bytes,
            SANDBOX_WAIT,
            &mut |ask, _| key.sign_crl(ask, &facts, &mut done.borrow_mut()),
            &mut |reply| done.borrow().check_crl(reply),
        )?;
        protocol::decode_reply::<String>(&reply)
            .map_err(|e| AuthorityError::from(CallError::BadReply(e.to_string())))?
            .map_err(AuthorityError::Refused)
    }
}

/// The SubjectPublicKeyInfo of a recorded certificate (PEM), DER.
fn spki_of(pem: &str) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::FromDer;
    let der = pem_rfc7468::decode_vec(pem.as_bytes())
        .map_err(|e| format!("a recorded certificate is not PEM: {e}"))?
        .1;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("a recorded certificate does not parse: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// The JWT authority's key from the data directory, made there (P-256, from the OS RNG,
/// encrypted with the CA's passphrase when there is one, written atomically with mode 0600) the
/// first time a signer of this version opens the CA. Signers sharing a ledger share this file
/// as they share the CA key.
fn jwt_key(d: &DataDir, passphrase: Option<&str>) -> Result<zeroize::Zeroizing<String>> {
    let path = d.jwt_key();
    if path.exists() {
        return crate::files::read_secret(&path).map(zeroize::Zeroizing::new);
    }
    let mut rng =
        wasm_pki::SeedRng::from_seed(seed().map_err(|e| anyhow::anyhow!("{}", e.message()))?.0);
    let key = wasm_pki::KeyPair::generate(wasm_pki::Algorithm::P256, &mut rng);
    let pem = match passphrase {
        Some(p) => zeroize::Zeroizing::new(
            key.to_encrypted_pkcs8_pem(p.as_bytes(), wasm_pki::KeyEncryption::Scrypt, &mut rng)?
                .to_string(),
        ),
        None => zeroize::Zeroizing::new(key.to_pkcs8_pem()?.to_string()),
    };
    crate::files::write_atomic(&path, pem.as_bytes(), 0o600)?;
    Ok(pem)
}

/// The secret ACME nonces and EAB keys are derived from: the JWT authority's key file as it is
/// stored (encrypted or not), made first if this CA has none yet (refused for an encrypted CA
/// without its passphrase: start the signer once first).
pub fn acme_secret(dir: &Path, passphrase: Option<&str>) -> Result<zeroize::Zeroizing<String>> {
    let d = DataDir(dir.to_path_buf());
    if !d.jwt_key().exists() {
        let ca_key = crate::files::read_secret(&d.ca_key())?;
        if ca_key.contains("ENCRYPTED PRIVATE KEY") && passphrase.is_none() {
            bail!("{} does not exist yet: start the signer once (it makes it), or give the CA's passphrase", d.jwt_key().display());
        }
    }
    jwt_key(&d, passphrase)
}

/// Where leaves point, for the base URLs the CA is reachable at.
fn published(bases: &[String]) -> Option<wasm_pki::PublicUrls> {
    if bases.is_empty() {
        return None;
    }
    let at = |path: &str| {
        bases
            .iter()
            .map(|b| format!("{}{path}", b.trim_end_matches('/')))
            .collect()
    };
    Some(wasm_pki::PublicUrls {
        crl: at("/v1/crl.der"),
        ca_issuers: at("/v1/ca.der"),
    })
}

/// What a new record says about where it came from.
struct Lineage<'a> {
    token_id: &'a str,
    profile: &'a str,
    identity: Option<&'a str>,
    renewed_from: Option<&'a str>,
    csr_sha256: Option<String>,
    then: Option<&'a Then>,
}

/// SHA-256 (hex) of the DER inside a CSR's PEM, for the record. Only the PEM armour and base64
/// are decoded here (the sandbox parses the CSR); text that is not one PEM block gets none.
fn csr_sha256(csr_pem: &str) -> Option<String> {
    use sha2::Digest;
    let (label, der) = pem_rfc7468::decode_vec(csr_pem.as_bytes()).ok()?;
    (label == "CERTIFICATE REQUEST" || label == "NEW CERTIFICATE REQUEST")
        .then(|| wasm_pki::hex(&sha2::Sha256::digest(&der)))
}

/// Decode the guest's reply to a sign request and record the certificate; only a recorded
/// certificate is returned. A reply that is not exactly the protocol's `Signed` is refused, and
/// nothing is recorded.
fn finish(
    ledger: &dyn Ledger,
    reply: &[u8],
    from: Lineage<'_>,
    chain: &[String],
    root_pem: &str,
) -> Result<Signed, AuthorityError> {
    let signed = protocol::decode_reply::<protocol::Signed>(reply)
        .map_err(|e| AuthorityError::from(CallError::BadReply(e.to_string())))?
        .map_err(AuthorityError::Refused)?;
    let record = Record {
        serial: signed.serial,
        subject: signed.subject,
        names: signed.names,
        not_before: signed.not_before,
        not_after: signed.not_after,
        fingerprint: signed.fingerprint,
        token_id: from.token_id.to_string(),
        profile: from.profile.to_string(),
        issued_at: now(),
        revoked_at: None,
        pem: signed.certificate,
        identity: from.identity.map(String::from),
        renewed_from: from.renewed_from.map(String::from),
        csr_sha256: from.csr_sha256,
        revocation_reason: None,
    };
    let then = match from.then {
        Some(then) => Some((then.0)(&record.serial).map_err(AuthorityError::Internal)?),
        None => None,
    };
    // Recorded before anyone sees the certificate: no record, no certificate.
    ledger.record_with(&record, then.as_ref()).map_err(|e| {
        AuthorityError::from_ledger(
            e,
            "the certificate could not be recorded, so it is not returned",
        )
    })?;
    Ok(Signed {
        certificate: record.pem,
        chain: chain.to_vec(),
        ca: root_pem.to_string(),
        not_after: record.not_after,
        renew_after: signed.renew_after,
        serial: record.serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SqliteLedger;

    fn signed_json() -> serde_json::Value {
        serde_json::json!({"ok": {
            "certificate": "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
            "chain": [], "serial": "0a", "subject": "CN=x", "names": ["DNS:x"],
            "notBefore": 1, "notAfter": 2, "renewAfter": 2, "fingerprint": "ab"
        }})
    }

    fn lineage() -> Lineage<'static> {
        Lineage {
            token_id: "t",
            profile: "default",
            identity: None,
            renewed_from: None,
            csr_sha256: None,
            then: None,
        }
    }

    #[test]
    fn a_reply_with_a_missing_or_renamed_field_fails_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let mut missing = signed_json();
        missing["ok"].as_object_mut().unwrap().remove("serial");
        let mut renamed = signed_json();
        let v = renamed["ok"]
            .as_object_mut()
            .unwrap()
            .remove("notAfter")
            .unwrap();
        renamed["ok"]["not_after"] = v;
        for bad in [missing, renamed] {
            let err = finish(&ledger, bad.to_string().as_bytes(), lineage(), &[], "").unwrap_err();
            assert_eq!(err.code(), "sandbox_reply", "{err}");
            assert!(err.to_string().contains("protocol"), "{err}");
        }
        assert!(ledger.list().unwrap().is_empty());
        // The control: the same reply, whole, is recorded and returned.
        let ok = finish(
            &ledger,
            signed_json().to_string().as_bytes(),
            lineage(),
            &[],
            "",
        )
        .unwrap();
        assert_eq!(ok.serial, "0a");
        assert_eq!(ledger.list().unwrap().len(), 1);
    }
}
