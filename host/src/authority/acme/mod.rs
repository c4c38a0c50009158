//! ACME (RFC 8555) on the authority's side: the `[acme.NAME]` directories of the policy, each
//! bound to a leaf profile that decides names, key types and lifetimes exactly as for
//! `/v1/sign`; who is asking (nonce, JWS signature, account); accounts, orders, authorizations
//! and challenges kept in the ledger; validation off the request path; finalize through the
//! same sandbox. The request codec is the core's (`wasm_pki::wire::acme`); `api/acme.rs` decodes
//! HTTP and renders answers, and knows the URLs.
//!
//! - [`config`]: the policy's directories and where validation may connect.
//! - [`nonce`]: replay nonces every replica recognises, spent once in the ledger.
//! - [`objects`]: the stored documents and their compare-and-swap writes.
//! - [`account`]: newAccount (external account binding), updates, keyChange.
//! - [`order`]: orders, authorizations, challenges, finalize, certificates, revocation.
//! - [`validate`]: http-01, tls-alpn-01 and dns-01 checks on a bounded queue.

pub mod account;
pub mod config;
pub mod nonce;
pub mod objects;
pub mod order;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use wasm_pki::wire::acme::{AccountKey, AcmeError, AcmeJws, JwsSigner, ProblemKind};

use super::{now, Authority, AuthorityError};
use crate::db::AcmeKind;
use config::AcmeDirectory;
use objects::{Account, Status, Stored};

/// Why an ACME request was refused, as the API answers it.
#[derive(Debug)]
pub enum Refused {
    /// An ACME problem (its kind gives the status).
    Acme(AcmeError),
    /// The key of a keyChange belongs to another account (409, `Location` that account).
    KeyTaken {
        /// The other account's id.
        account: String,
    },
    /// The ledger or the sandbox cannot take it now: 503 with `Retry-After`.
    Unavailable(String),
}

impl Refused {
    /// A `serverInternal` problem.
    pub fn internal(detail: impl Into<String>) -> Self {
        Refused::Acme(AcmeError::new(ProblemKind::ServerInternal, detail))
    }

    /// An ACME problem of `kind`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Refused::Acme(AcmeError::new(kind, detail))
    }

    /// A ledger failure: unavailable (retry) or internal.
    pub fn ledger(e: anyhow::Error) -> Self {
        Self::from(AuthorityError::from_ledger(e, ""))
    }
}

impl From<AcmeError> for Refused {
    fn from(e: AcmeError) -> Self {
        Refused::Acme(e)
    }
}

impl From<AuthorityError> for Refused {
    fn from(e: AuthorityError) -> Self {
        match e {
            AuthorityError::Busy | AuthorityError::LedgerUnavailable(_) => {
                Refused::Unavailable(e.message())
            }
            other => Refused::internal(other.message()),
        }
    }
}

/// The ACME part of a running authority: nonce and EAB keys, the validation queue.
pub struct State {
    nonces: nonce::Nonces,
    eab: ring::hkdf::Prk,
    validator: Option<validate::Validator>,
    /// Challenges this signer is validating now (`authz/index`): shown as processing, and not
    /// started twice. Not in the ledger: a signer that stops mid-validation leaves the challenge
    /// pending, so its client may simply ask again.
    validating: Validating,
    directories: BTreeMap<String, Arc<AcmeDirectory>>,
}

/// The set of challenges a signer is validating (see [`State`]).
pub(crate) type Validating = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// The HKDF key that EAB MAC keys are derived from, for `secret` (the JWT authority's key file,
/// which every replica holds): a ledger reader learns no EAB key.
fn eab_prk(secret: &[u8]) -> ring::hkdf::Prk {
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"wasm-pki acme eab").extract(secret)
}

/// The EAB MAC key of the token whose hash (base64url) is `kid`, derived from `secret` as the
/// signer derives it: what `wasm-pki token create --acme` prints.
pub fn eab_hmac_key(secret: &[u8], kid: &str) -> zeroize::Zeroizing<[u8; 32]> {
    derive_eab(&eab_prk(secret), kid)
}

fn derive_eab(prk: &ring::hkdf::Prk, kid: &str) -> zeroize::Zeroizing<[u8; 32]> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let info = [kid.as_bytes()];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    if let Ok(okm) = prk.expand(&info, ring::hkdf::HKDF_SHA256) {
        let _ = okm.fill(key.as_mut());
    }
    key
}

impl State {
    /// The ACME state for `directories` (none: nothing runs), keyed by `secret` (see
    /// [`eab_hmac_key`]); `shared`: other signers use the same ledger (nonces are spent there).
    pub fn new(
        directories: &BTreeMap<String, AcmeDirectory>,
        secret: &[u8],
        shared: bool,
    ) -> anyhow::Result<Self> {
        let validator = if directories.is_empty() {
            None
        } else {
            Some(validate::Validator::start(validate::Limits::default())?)
        };
        Ok(State {
            nonces: if shared {
                nonce::Nonces::from_secret(secret)
            } else {
                nonce::Nonces::local(secret, &ring::rand::SystemRandom::new())
            },
            eab: eab_prk(secret),
            validator,
            validating: Validating::default(),
            directories: directories
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect(),
        })
    }
}

/// Who signed a request.
pub enum Caller {
    /// A key not (necessarily) registered: newAccount, or revokeCert with the certificate's key.
    Key(AccountKey),
    /// A registered, valid account (`kid`).
    Account(Box<AccountCaller>),
}

/// A registered account that signed a request.
pub struct AccountCaller {
    /// Its id.
    pub id: String,
    /// Its document and row.
    pub account: Stored<Account>,
    /// Its key.
    pub key: AccountKey,
}

/// A fresh random id or token: 128 bits (`bytes` 16) or more, base64url.
pub(crate) fn random_id(bytes: usize) -> Result<String, Refused> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).map_err(|e| Refused::internal(format!("OS RNG: {e}")))?;
    Ok(Base64UrlUnpadded::encode_string(&raw))
}

impl Authority {
    /// The directory `name`, if the policy has it.
    pub fn acme_directory(&self, name: &str) -> Option<&Arc<AcmeDirectory>> {
        self.acme.directories.get(name)
    }

    /// A fresh nonce for a `Replay-Nonce` header.
    pub fn acme_nonce(&self) -> String {
        self.acme
            .nonces
            .make(now(), &ring::rand::SystemRandom::new())
    }

    /// Check who signed `jws`, a request to directory `dir`: its nonce is spent (once, across
    /// replicas), then either its `jwk` (allowed only where `jwk_allowed`) or its `kid`, which
    /// must start with `account_prefix` (this directory's account URL + `/`) and name a valid
    /// account; the signature is verified with ring.
    pub fn acme_authenticate(
        &self,
        dir: &str,
        jws: &AcmeJws,
        account_prefix: &str,
        jwk_allowed: bool,
    ) -> Result<Caller, Refused> {
        let nonce = jws
            .nonce()
            .ok_or_else(|| Refused::new(ProblemKind::BadNonce, "the request has no nonce"))?;
        match self
            .acme
            .nonces
            .spend(self.ledger.as_ref(), nonce, now())
            .map_err(Refused::ledger)?
        {
            Ok(()) => {}
            Err(bad) => return Err(Refused::new(ProblemKind::BadNonce, bad.to_string())),
        }
        match jws.signer() {
            JwsSigner::Jwk(key) => {
                if !jwk_allowed {
                    return Err(Refused::new(
                        ProblemKind::Malformed,
                        "this request must name its account by kid, not carry a jwk",
                    ));
                }
                verify(jws, key)?;
                Ok(Caller::Key(key.clone()))
            }
            JwsSigner::Kid(kid) => {
                let id = kid.strip_prefix(account_prefix).filter(|id| {
                    !id.is_empty()
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
                let unknown = || {
                    Refused::new(
                        ProblemKind::AccountDoesNotExist,
                        "the kid is not an account of this directory",
                    )
                };
                let id = id.ok_or_else(unknown)?;
                let account: Stored<Account> =
                    Stored::load(self.ledger.as_ref(), AcmeKind::Account, id)?
                        .filter(|a| a.row.directory == dir)
                        .ok_or_else(unknown)?;
                let key = AccountKey::from_jwk(
                    &serde_json::from_str(&account.doc.jwk)
                        .map_err(|e| Refused::internal(format!("a stored account key: {e}")))?,
                )?;
                verify(jws, &key)?;
                if account.doc.status != Status::Valid {
                    return Err(Refused::new(
                        ProblemKind::Unauthorized,
                        "the account is deactivated",
                    ));
                }
                Ok(Caller::Account(Box::new(AccountCaller {
                    id: id.to_string(),
                    account,
                    key,
                })))
            }
        }
    }
}

/// Verify `jws`'s signature by `key` with ring; a bad one is `malformed` (RFC 8555 §6.2).
fn verify(jws: &AcmeJws, key: &AccountKey) -> Result<(), Refused> {
    let check = jws.signature_check_with(key)?;
    if crate::sandbox::verify::verify(&check) {
        Ok(())
    } else {
        Err(Refused::new(
            ProblemKind::Malformed,
            "the JWS signature does not verify with the account key",
        ))
    }
}

impl Caller {
    /// The account, or `accountDoesNotExist` for a bare key.
    pub fn account(&self) -> Result<&AccountCaller, Refused> {
        match self {
            Caller::Account(a) => Ok(a),
            Caller::Key(_) => Err(Refused::new(
                ProblemKind::AccountDoesNotExist,
                "this request must be signed by a registered account (kid)",
            )),
        }
    }
}
