//! ACME problem documents (RFC 7807 as RFC 8555 §6.7 uses them) and the codec's error type, which
//! knows which ACME error kind each refusal is.

use core::fmt;

use serde::Serialize;

use super::messages::Identifier;
use crate::error::Error;

/// The ACME error kinds (RFC 8555 §6.7, the `urn:ietf:params:acme:error:` namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The request named an account that does not exist.
    AccountDoesNotExist,
    /// The certificate is already revoked.
    AlreadyRevoked,
    /// The CSR is unacceptable.
    BadCsr,
    /// The nonce is missing, unknown or used.
    BadNonce,
    /// The JWS was signed by a public key the server does not support.
    BadPublicKey,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The JWS was signed with an algorithm the server does not support.
    BadSignatureAlgorithm,
    /// CAA records forbid issuance.
    Caa,
    /// Several errors; see the subproblems.
    Compound,
    /// The server could not connect to the validation target.
    Connection,
    /// A DNS problem during validation.
    Dns,
    /// The server requires external account binding.
    ExternalAccountRequired,
    /// The response to a challenge did not match.
    IncorrectResponse,
    /// A contact URL is invalid.
    InvalidContact,
    /// The request is malformed.
    Malformed,
    /// The order is not ready to be finalised.
    OrderNotReady,
    /// Too many requests.
    RateLimited,
    /// The server will not issue for the identifier.
    RejectedIdentifier,
    /// Internal server error.
    ServerInternal,
    /// A TLS error during validation.
    Tls,
    /// The client lacks authorization.
    Unauthorized,
    /// A contact URL of a scheme the server does not support.
    UnsupportedContact,
    /// An identifier of a type the server does not support.
    UnsupportedIdentifier,
    /// The user must visit the `instance` URL (e.g. new terms of service).
    UserActionRequired,
}

impl ProblemKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ProblemKind; 24] = [
        ProblemKind::AccountDoesNotExist,
        ProblemKind::AlreadyRevoked,
        ProblemKind::BadCsr,
        ProblemKind::BadNonce,
        ProblemKind::BadPublicKey,
        ProblemKind::BadRevocationReason,
        ProblemKind::BadSignatureAlgorithm,
        ProblemKind::Caa,
        ProblemKind::Compound,
        ProblemKind::Connection,
        ProblemKind::Dns,
        ProblemKind::ExternalAccountRequired,
        ProblemKind::IncorrectResponse,
        ProblemKind::InvalidContact,
        ProblemKind::Malformed,
        ProblemKind::OrderNotReady,
        ProblemKind::RateLimited,
        ProblemKind::RejectedIdentifier,
        ProblemKind::ServerInternal,
        ProblemKind::Tls,
        ProblemKind::Unauthorized,
        ProblemKind::UnsupportedContact,
        ProblemKind::UnsupportedIdentifier,
        ProblemKind::UserActionRequired,
    ];

    /// The name after `urn:ietf:params:acme:error:` (`badNonce`, `badCSR`…).
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::AccountDoesNotExist => "accountDoesNotExist",
            ProblemKind::AlreadyRevoked => "alreadyRevoked",
            ProblemKind::BadCsr => "badCSR",
            ProblemKind::BadNonce => "badNonce",
            ProblemKind::BadPublicKey => "badPublicKey",
            ProblemKind::BadRevocationReason => "badRevocationReason",
            ProblemKind::BadSignatureAlgorithm => "badSignatureAlgorithm",
            ProblemKind::Caa => "caa",
            ProblemKind::Compound => "compound",
            ProblemKind::Connection => "connection",
            ProblemKind::Dns => "dns",
            ProblemKind::ExternalAccountRequired => "externalAccountRequired",
            ProblemKind::IncorrectResponse => "incorrectResponse",
            ProblemKind::InvalidContact => "invalidContact",
            ProblemKind::Malformed => "malformed",
            ProblemKind::OrderNotReady => "orderNotReady",
            ProblemKind::RateLimited => "rateLimited",
            ProblemKind::RejectedIdentifier => "rejectedIdentifier",
            ProblemKind::ServerInternal => "serverInternal",
            ProblemKind::Tls => "tls",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::UnsupportedContact => "unsupportedContact",
            ProblemKind::UnsupportedIdentifier => "unsupportedIdentifier",
            ProblemKind::UserActionRequired => "userActionRequired",
        }
    }

    /// The problem `type` URN.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }

    /// The HTTP status a server answers with (as Boulder and most servers do; RFC 8555 fixes
    /// only some of them).
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::Unauthorized
            | ProblemKind::OrderNotReady
            | ProblemKind::UserActionRequired => 403,
            ProblemKind::RateLimited => 429,
            ProblemKind::ServerInternal => 500,
            _ => 400,
        }
    }

    /// The kind whose [`ProblemKind::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A refusal of the ACME codec: the ACME error kind the server answers with, and what exactly
/// was wrong. Converts into [`Error`] (losing the kind) and into a [`Problem`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeError {
    /// Which ACME error this is.
    pub kind: ProblemKind,
    /// What exactly was wrong, for the problem's `detail`.
    pub detail: String,
}

impl AcmeError {
    /// An error of `kind` saying `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        AcmeError {
            kind,
            detail: detail.into(),
        }
    }

    /// A `malformed` error.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Malformed, detail)
    }

    /// Wrap an error of the rest of the core with the ACME kind it means here.
    pub(crate) fn from_core(kind: ProblemKind, e: &Error) -> Self {
        Self::new(kind, e.to_string())
    }
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ACME {}: {}", self.kind.name(), self.detail)
    }
}

impl std::error::Error for AcmeError {}

impl From<AcmeError> for Error {
    fn from(e: AcmeError) -> Self {
        match e.kind {
            ProblemKind::BadSignatureAlgorithm => Error::UnsupportedAlgorithm(e.detail),
            ProblemKind::BadPublicKey => Error::InvalidKey(e.detail),
            ProblemKind::RejectedIdentifier
            | ProblemKind::UnsupportedIdentifier
            | ProblemKind::InvalidContact
            | ProblemKind::UnsupportedContact => Error::InvalidName(e.detail),
            _ => Error::Malformed {
                what: "ACME request",
                detail: format!("{}: {}", e.kind.name(), e.detail),
            },
        }
    }
}

/// The ACME error kind for an error of the rest of the core met while serving an ACME request
/// (a CSR the core refused, a name the policy refused…).
pub fn problem_kind(e: &Error) -> ProblemKind {
    match e {
        Error::TooLarge { .. } | Error::Pem(_) | Error::Malformed { .. } => ProblemKind::Malformed,
        // An invalid JWS signature is `malformed` (RFC 8555 §6.2).
        Error::BadSignature(_) => ProblemKind::Malformed,
        Error::UnsupportedAlgorithm(_) | Error::AlgorithmMismatch(_) => {
            ProblemKind::BadSignatureAlgorithm
        }
        Error::InvalidKey(_) => ProblemKind::BadPublicKey,
        Error::InvalidName(_) | Error::Policy(_) => ProblemKind::RejectedIdentifier,
        Error::Proof { .. } | Error::JwtSvid { .. } => ProblemKind::Unauthorized,
        _ => ProblemKind::ServerInternal,
    }
}

/// An ACME problem document (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `urn:ietf:params:acme:error:<kind>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// Per-identifier problems (for `compound` and order-level errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
}

/// A problem about one identifier of a request (RFC 8555 §6.7.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subproblem {
    /// `urn:ietf:params:acme:error:<kind>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// What went wrong.
    pub detail: String,
    /// The identifier it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

impl Problem {
    /// A problem of `kind` saying `detail`, with the kind's status.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            problem_type: kind.urn(),
            detail: detail.into(),
            status: kind.status(),
            subproblems: Vec::new(),
        }
    }

    /// Add a subproblem about `identifier`.
    pub fn with_subproblem(
        mut self,
        kind: ProblemKind,
        detail: impl Into<String>,
        identifier: Option<Identifier>,
    ) -> Self {
        self.subproblems.push(Subproblem {
            problem_type: kind.urn(),
            detail: detail.into(),
            identifier,
        });
        self
    }
}

impl From<&AcmeError> for Problem {
    fn from(e: &AcmeError) -> Self {
        Problem::new(e.kind, e.detail.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialise() {
        for k in ProblemKind::ALL {
            assert_eq!(ProblemKind::from_name(k.name()), Some(k));
            assert!(k.urn().starts_with("urn:ietf:params:acme:error:"));
        }
        let p = Problem::new(ProblemKind::RejectedIdentifier, "no").with_subproblem(
            ProblemKind::RejectedIdentifier,
            "not ours",
            Some(Identifier::Dns("a.example".into())),
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:ietf:params:acme:error:rejectedIdentifier");
        assert_eq!(v["status"], 400);
        assert_eq!(v["subproblems"][0]["identifier"]["type"], "dns");
        assert_eq!(v["subproblems"][0]["identifier"]["value"], "a.example");
        let bare = serde_json::to_value(Problem::new(ProblemKind::BadNonce, "x")).unwrap();
        assert!(bare.get("subproblems").is_none());
    }

    #[test]
    fn core_errors_map_to_kinds_and_back() {
        for (kind, code) in [
            (ProblemKind::BadSignatureAlgorithm, "unsupported_algorithm"),
            (ProblemKind::BadPublicKey, "invalid_key"),
            (ProblemKind::RejectedIdentifier, "invalid_name"),
            (ProblemKind::Malformed, "malformed"),
        ] {
            let e: Error = AcmeError::new(kind, "d").into();
            assert_eq!(e.code(), code);
            assert_eq!(problem_kind(&e), kind);
        }
        assert_eq!(
            problem_kind(&Error::BadSignature("x")),
            ProblemKind::Malformed
        );
        assert_eq!(
            problem_kind(&Error::Encoding("x".into())),
            ProblemKind::ServerInternal
        );
    }
}
