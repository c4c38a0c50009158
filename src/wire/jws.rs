//! The compact JWS form (RFC 7515) that renewal proofs and JWT-SVIDs share: signing a header and
//! claims with one of our keys, and splitting a token into its parts. What the header and claims
//! must hold, and the errors, are each token's own.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Serialize;

/// `BASE64URL(header).BASE64URL(claims)`: what a JWS signature covers. Header and claims are
/// plain structs of strings and numbers, whose serialisation cannot fail.
pub(crate) fn signing_input<H: Serialize, C: Serialize>(header: &H, claims: &C) -> String {
    let json = |v: String| Base64UrlUnpadded::encode_string(v.as_bytes());
    format!(
        "{}.{}",
        json(serde_json::to_string(header).unwrap_or_default()),
        json(serde_json::to_string(claims).unwrap_or_default())
    )
}

/// The compact JWS: `signing_input` and its raw signature (ES256: r‖s; EdDSA: the 64 bytes).
pub(crate) fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!(
        "{signing_input}.{}",
        Base64UrlUnpadded::encode_string(signature)
    )
}

/// A compact JWS split at its two dots (nothing decoded yet).
pub(crate) struct Parts<'a> {
    /// The header, base64url.
    pub header: &'a str,
    /// The claims (payload), base64url.
    pub claims: &'a str,
    /// The signature, base64url.
    pub signature: &'a str,
    /// What the signature covers: `header.claims`.
    pub signing_input: &'a str,
}

/// Split `token` into exactly three parts; None when it has another number of dots.
pub(crate) fn split(token: &str) -> Option<Parts<'_>> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(Parts {
        header,
        claims,
        signature,
        signing_input: &token[..header.len() + 1 + claims.len()],
    })
}
