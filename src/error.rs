//! The single error type of the core.

use core::fmt;

/// Every failure the core reports. Variants say *what* was wrong so a CLI, an HTTP API or a page can
/// show a message the user can act on; [`Error::code`] gives a stable machine-readable string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Input is larger than the core accepts; refused before any parsing.
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// PEM text could not be read, or held a different kind of object than expected.
    Pem(String),
    /// DER/ASN.1 that does not parse as the expected structure.
    Malformed {
        /// What was being parsed (a CSR, a certificate, a PKCS#8 key…).
        what: &'static str,
        /// The parser's account of the problem.
        detail: String,
    },
    /// A key, signature or hash algorithm the core does not support; the name says which.
    UnsupportedAlgorithm(String),
    /// The signature algorithm does not fit the key (e.g. Ed25519 signature with an RSA key).
    AlgorithmMismatch(String),
    /// A key is structurally valid but unacceptable (e.g. RSA below 2048 bits, invalid point).
    InvalidKey(String),
    /// A signature did not verify.
    BadSignature(&'static str),
    /// An encrypted key needs a passphrase, or the passphrase was wrong.
    Passphrase(String),
    /// A name (subject attribute, DNS name, IP, URI, e-mail, SPIFFE ID) is not well formed.
    InvalidName(String),
    /// The request is well formed but outside the issuance policy; nothing was issued.
    Policy(String),
    /// A parameter given by the caller (not outside input) is invalid.
    InvalidParameter(String),
    /// A chain of certificates failed verification; the message names the certificate and reason.
    Chain(String),
    /// Certificate generation failed inside the encoder.
    Encoding(String),
    /// A renewal proof was refused; the fault says which check failed.
    Proof {
        /// Which check failed.
        fault: ProofFault,
        /// What exactly.
        detail: String,
    },
    /// A JWT-SVID was refused; the fault says which check failed (the same four checks).
    JwtSvid {
        /// Which check failed.
        fault: ProofFault,
        /// What exactly.
        detail: String,
    },
}

/// Why a renewal proof ([`crate::wire::proof`]) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofFault {
    /// Not a well-formed proof (JWS form, header, claims, certificate).
    Malformed,
    /// Not signed by the key of the certificate it carries.
    Signature,
    /// Outside its lifetime, or claiming a lifetime longer than allowed.
    Expired,
    /// Made for another audience (another signer or URL).
    Audience,
}

/// Shorthand for results of the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// Every code [`Error::code`] returns; the npm package's `ErrorCode` type lists the same set
    /// (tests/declarations.rs checks it).
    pub const CODES: &'static [&'static str] = &[
        "too_large",
        "bad_pem",
        "malformed",
        "unsupported_algorithm",
        "algorithm_mismatch",
        "invalid_key",
        "bad_signature",
        "passphrase",
        "invalid_name",
        "policy",
        "invalid_parameter",
        "chain",
        "encoding",
        "proof_malformed",
        "proof_signature",
        "proof_expired",
        "proof_audience",
        "jwt_malformed",
        "jwt_signature",
        "jwt_expired",
        "jwt_audience",
    ];

    /// A stable string for programs (HTTP error codes, JS `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::TooLarge { .. } => "too_large",
            Error::Pem(_) => "bad_pem",
            Error::Malformed { .. } => "malformed",
            Error::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Error::AlgorithmMismatch(_) => "algorithm_mismatch",
            Error::InvalidKey(_) => "invalid_key",
            Error::BadSignature(_) => "bad_signature",
            Error::Passphrase(_) => "passphrase",
            Error::InvalidName(_) => "invalid_name",
            Error::Policy(_) => "policy",
            Error::InvalidParameter(_) => "invalid_parameter",
            Error::Chain(_) => "chain",
            Error::Encoding(_) => "encoding",
            Error::Proof { fault, .. } => match fault {
                ProofFault::Malformed => "proof_malformed",
                ProofFault::Signature => "proof_signature",
                ProofFault::Expired => "proof_expired",
                ProofFault::Audience => "proof_audience",
            },
            Error::JwtSvid { fault, .. } => match fault {
                ProofFault::Malformed => "jwt_malformed",
                ProofFault::Signature => "jwt_signature",
                ProofFault::Expired => "jwt_expired",
                ProofFault::Audience => "jwt_audience",
            },
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        Error::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge { what, size, limit } => {
                write!(
                    f,
                    "{what} is {size} bytes, more than the limit of {limit} bytes"
                )
            }
            Error::Pem(m) => write!(f, "PEM: {m}"),
            Error::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Error::UnsupportedAlgorithm(m) => write!(f, "unsupported algorithm: {m}"),
            Error::AlgorithmMismatch(m) => write!(f, "algorithm does not match the key: {m}"),
            Error::InvalidKey(m) => write!(f, "invalid key: {m}"),
            Error::BadSignature(what) => write!(f, "the signature of the {what} does not verify"),
            Error::Passphrase(m) => write!(f, "passphrase: {m}"),
            Error::InvalidName(m) => write!(f, "invalid name: {m}"),
            Error::Policy(m) => write!(f, "refused by policy: {m}"),
            Error::InvalidParameter(m) => write!(f, "invalid parameter: {m}"),
            Error::Chain(m) => write!(f, "chain verification failed: {m}"),
            Error::Encoding(m) => write!(f, "encoding failed: {m}"),
            Error::Proof { detail, .. } => write!(f, "renewal proof refused: {detail}"),
            Error::JwtSvid { detail, .. } => write!(f, "JWT-SVID refused: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Encoding(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_lists_every_code_once() {
        let all = [
            Error::TooLarge {
                what: "x",
                size: 1,
                limit: 0,
            },
            Error::Pem(String::new()),
            Error::malformed("x", ""),
            Error::UnsupportedAlgorithm(String::new()),
            Error::AlgorithmMismatch(String::new()),
            Error::InvalidKey(String::new()),
            Error::BadSignature("x"),
            Error::Passphrase(String::new()),
            Error::InvalidName(String::new()),
            Error::Policy(String::new()),
            Error::InvalidParameter(String::new()),
            Error::Chain(String::new()),
            Error::Encoding(String::new()),
            Error::Proof {
                fault: ProofFault::Malformed,
                detail: String::new(),
            },
            Error::Proof {
                fault: ProofFault::Signature,
                detail: String::new(),
            },
            Error::Proof {
                fault: ProofFault::Expired,
                detail: String::new(),
            },
            Error::Proof {
                fault: ProofFault::Audience,
                detail: String::new(),
            },
        ];
        let jwt = [
            ProofFault::Malformed,
            ProofFault::Signature,
            ProofFault::Expired,
            ProofFault::Audience,
        ]
        .map(|fault| Error::JwtSvid {
            fault,
            detail: String::new(),
        });
        let all: Vec<Error> = all.into_iter().chain(jwt).collect();
        let codes: Vec<&str> = all.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }
}
