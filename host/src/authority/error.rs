//! Why the authority refused or failed: one enum, each variant with a stable code. No HTTP here;
//! `api/` maps these to status codes.

use wasm_pki::protocol::GuestError;

use crate::sandbox::CallError;

/// A refusal or failure of the authority.
#[derive(Debug)]
pub enum AuthorityError {
    /// The CSR is larger than the host accepts.
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a token of this CA (malformed or unknown).
    BadToken(&'static str),
    /// The token has expired.
    TokenExpired,
    /// The token's uses are spent.
    TokenUsed,
    /// The credential names a profile the policy lacks.
    UnknownProfile(String),
    /// The credential is valid but not for this: another profile's role, minting intermediates.
    Forbidden(String),
    /// An operator's order (a token to create) is not valid.
    InvalidOrder(String),
    /// The certificate presented for renewal is not one this CA issued and recorded.
    NotIssuedHere(String),
    /// The certificate presented for renewal has been revoked.
    Revoked,
    /// The certificate presented for renewal has expired (beyond its profile's grace).
    CertificateExpired,
    /// The certificate's profile does not allow renewal.
    RenewalDisabled(String),
    /// The certificate's profile is no longer in the policy.
    ProfileRemoved(String),
    /// This renewal proof was used before.
    ProofReplayed,
    /// The core refused the request (bad CSR, outside policy…): its code and message.
    Refused(GuestError),
    /// No sandbox instance became free in time.
    Busy,
    /// The sandbox stopped the request (trap, deadline, memory cap).
    SandboxTrap(String),
    /// A sandbox instance could not be set up.
    SandboxSetup(String),
    /// The sandbox answered outside the protocol.
    SandboxReply(String),
    /// The guest asked the key store to sign what it must not; nothing was signed or recorded.
    SandboxViolation(String),
    /// The key store (an HSM) cannot sign now; nothing was issued; retry shortly.
    KeyStoreUnavailable(String),
    /// The ledger failed; nothing was issued.
    Ledger(String),
    /// The ledger's database cannot be reached now; nothing was issued; retry shortly.
    LedgerUnavailable(String),
    /// What had to move with the certificate's record moved meanwhile (an ACME order finalized
    /// by another request); nothing was recorded.
    Moved(String),
    /// Anything else on the host (the OS RNG).
    Internal(String),
}

impl AuthorityError {
    /// The stable code clients see.
    pub fn code(&self) -> &str {
        match self {
            AuthorityError::TooLarge { .. } => "too_large",
            AuthorityError::BadToken(_) => "bad_token",
            AuthorityError::TokenExpired => "token_expired",
            AuthorityError::TokenUsed => "token_used",
            AuthorityError::UnknownProfile(_) => "unknown_profile",
            AuthorityError::Forbidden(_) => "forbidden",
            AuthorityError::InvalidOrder(_) => "invalid_order",
            AuthorityError::NotIssuedHere(_) => "not_issued_here",
            AuthorityError::Revoked => "revoked",
            AuthorityError::CertificateExpired => "certificate_expired",
            AuthorityError::RenewalDisabled(_) => "renewal_disabled",
            AuthorityError::ProfileRemoved(_) => "profile_removed",
            AuthorityError::ProofReplayed => "proof_replayed",
            AuthorityError::Refused(e) => &e.code,
            AuthorityError::Busy => "busy",
            AuthorityError::SandboxTrap(_) => "sandbox_trap",
            AuthorityError::SandboxSetup(_) => "sandbox_setup",
            AuthorityError::SandboxReply(_) => "sandbox_reply",
            AuthorityError::SandboxViolation(_) => "sandbox_violation",
            AuthorityError::KeyStoreUnavailable(_) => "key_store_unavailable",
            AuthorityError::Ledger(_) => "ledger",
            AuthorityError::LedgerUnavailable(_) => "ledger_unavailable",
            AuthorityError::Moved(_) => "moved",
            AuthorityError::Internal(_) => "internal",
        }
    }

    /// The human message.
    pub fn message(&self) -> String {
        match self {
            AuthorityError::TooLarge { size, limit } => {
                format!("the CSR is {size} bytes; at most {limit} are accepted")
            }
            AuthorityError::BadToken(m) => (*m).to_string(),
            AuthorityError::TokenExpired => "the token has expired".into(),
            AuthorityError::TokenUsed => "the token has been used up".into(),
            AuthorityError::UnknownProfile(p) => format!("profile \"{p}\" is not in the policy"),
            AuthorityError::Forbidden(m) => m.clone(),
            AuthorityError::NotIssuedHere(m) | AuthorityError::InvalidOrder(m) => m.clone(),
            AuthorityError::Revoked => "the certificate has been revoked".into(),
            AuthorityError::CertificateExpired => {
                "the certificate has expired; enrol again with a token".into()
            }
            AuthorityError::RenewalDisabled(p) => {
                format!("profile \"{p}\" does not allow renewal; enrol again with a token")
            }
            AuthorityError::ProfileRemoved(p) => {
                format!("profile \"{p}\" is no longer in the policy")
            }
            AuthorityError::ProofReplayed => {
                "this renewal proof was used before; sign a new one for each request".into()
            }
            AuthorityError::Refused(e) => e.message.clone(),
            AuthorityError::Busy => "the signer is saturated; retry shortly".into(),
            AuthorityError::SandboxTrap(m) => format!("the sandbox stopped this request: {m}"),
            AuthorityError::SandboxSetup(m) | AuthorityError::Ledger(m) => m.clone(),
            AuthorityError::LedgerUnavailable(m) => {
                format!("the ledger cannot be reached; nothing was issued; retry shortly ({m})")
            }
            AuthorityError::SandboxReply(m) => {
                format!("the sandbox's reply does not follow the protocol: {m}")
            }
            AuthorityError::SandboxViolation(_) => {
                "the signer refused what its sandbox asked to sign; nothing was issued".into()
            }
            AuthorityError::KeyStoreUnavailable(m) => {
                format!("the CA key store cannot sign now; nothing was issued; retry shortly ({m})")
            }
            AuthorityError::Moved(m) => {
                format!("{m} changed meanwhile; nothing was issued")
            }
            AuthorityError::Internal(m) => m.clone(),
        }
    }
}

impl AuthorityError {
    /// A ledger failure: unavailable (worth a retry) or not, with `context` first.
    pub fn from_ledger(e: anyhow::Error, context: &str) -> Self {
        if e.downcast_ref::<crate::db::Unavailable>().is_some() {
            AuthorityError::LedgerUnavailable(format!("{e:#}"))
        } else if let Some(crate::db::Stale(what)) = e.downcast_ref::<crate::db::Stale>() {
            AuthorityError::Moved(what.clone())
        } else if context.is_empty() {
            AuthorityError::Ledger(format!("{e:#}"))
        } else {
            AuthorityError::Ledger(format!("{context}: {e:#}"))
        }
    }
}

impl std::fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for AuthorityError {}

impl From<CallError> for AuthorityError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Busy => AuthorityError::Busy,
            CallError::Trap(m) => AuthorityError::SandboxTrap(m),
            CallError::Setup(e) => AuthorityError::SandboxSetup(format!("{e:#}")),
            CallError::BadReply(m) => AuthorityError::SandboxReply(m),
            CallError::Violation(m) => AuthorityError::SandboxViolation(m),
            CallError::KeyStore(m) => AuthorityError::KeyStoreUnavailable(m),
        }
    }
}
