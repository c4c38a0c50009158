//! Every OID the core compares or names, in one place: oid-registry's constants (the registry
//! x509-parser re-exports), plus the few it lacks, declared here once with its `oid!` macro.

use x509_parser::asn1_rs::oid;
pub(crate) use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384,
    OID_NIST_EC_P521, OID_NIST_HASH_SHA256, OID_PKCS1_MD5WITHRSAENC, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_PKIX_AUTHORITY_INFO_ACCESS, OID_SIG_DSA_WITH_SHA1,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    OID_SIG_ED25519, OID_SIG_ED448, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME,
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_CERTIFICATE_POLICIES, OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_NAME_CONSTRAINTS,
    OID_X509_EXT_SUBJECT_ALT_NAME, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME, OID_X509_STATE_OR_PROVINCE_NAME,
};

/// MGF1 (RFC 8017), for RSASSA-PSS parameters.
pub(crate) const OID_PKCS1_MGF1: Oid<'static> = oid!(1.2.840 .113549 .1 .1 .8);
/// ecdsa-with-SHA1 (refused by name).
const OID_SIG_ECDSA_WITH_SHA1: Oid<'static> = oid!(1.2.840 .10045 .4 .1);
/// dsa-with-SHA256 (refused by name).
const OID_SIG_DSA_WITH_SHA256: Oid<'static> = oid!(2.16.840 .1 .101 .3 .4 .3 .2);
/// X25519 and X448 keys (key agreement, never signatures).
const OID_X25519: Oid<'static> = oid!(1.3.101 .110);
const OID_X448: Oid<'static> = oid!(1.3.101 .111);
/// secp256k1 (refused by name).
const OID_SECP256K1: Oid<'static> = oid!(1.3.132 .0 .10);
/// GOST R 34.10-2012 keys (refused by name).
const OID_GOST_2012: Oid<'static> = oid!(1.2.643 .7 .1 .1 .1 .1);

/// An OID from its DER content bytes (as the RustCrypto crates hand them out).
pub(crate) fn from_der_bytes(bytes: &[u8]) -> Oid<'_> {
    Oid::new(std::borrow::Cow::Borrowed(bytes))
}

/// Names for algorithm, curve and extension OIDs, so errors and descriptions say what they saw.
const NAMES: &[(Oid<'static>, &str)] = &[
    (OID_PKCS1_RSAENCRYPTION, "rsaEncryption"),
    (OID_PKCS1_MD5WITHRSAENC, "md5WithRSAEncryption"),
    (OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption"),
    (OID_PKCS1_RSASSAPSS, "RSASSA-PSS"),
    (OID_PKCS1_SHA256WITHRSA, "sha256WithRSAEncryption"),
    (OID_PKCS1_SHA384WITHRSA, "sha384WithRSAEncryption"),
    (OID_PKCS1_SHA512WITHRSA, "sha512WithRSAEncryption"),
    (OID_KEY_TYPE_EC_PUBLIC_KEY, "id-ecPublicKey"),
    (OID_SIG_ECDSA_WITH_SHA1, "ecdsa-with-SHA1"),
    (OID_SIG_ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
    (OID_SIG_ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
    (OID_SIG_ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
    (OID_KEY_TYPE_DSA, "DSA"),
    (OID_SIG_DSA_WITH_SHA1, "dsa-with-SHA1"),
    (OID_SIG_DSA_WITH_SHA256, "dsa-with-SHA256"),
    (OID_X25519, "X25519"),
    (OID_X448, "X448"),
    (OID_SIG_ED25519, "Ed25519"),
    (OID_SIG_ED448, "Ed448"),
    (OID_GOST_2012, "GOST R 34.10-2012"),
    (OID_NIST_HASH_SHA256, "SHA-256"),
    (OID_PKCS1_MGF1, "MGF1"),
    (OID_NIST_EC_P384, "P-384"),
    (OID_NIST_EC_P521, "P-521"),
    (OID_SECP256K1, "secp256k1"),
    (OID_X509_EXT_SUBJECT_KEY_IDENTIFIER, "subjectKeyIdentifier"),
    (OID_X509_EXT_KEY_USAGE, "keyUsage"),
    (OID_X509_EXT_SUBJECT_ALT_NAME, "subjectAltName"),
    (OID_X509_EXT_BASIC_CONSTRAINTS, "basicConstraints"),
    (OID_X509_EXT_NAME_CONSTRAINTS, "nameConstraints"),
    (
        OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
        "cRLDistributionPoints",
    ),
    (OID_X509_EXT_CERTIFICATE_POLICIES, "certificatePolicies"),
    (
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
        "authorityKeyIdentifier",
    ),
    (OID_X509_EXT_EXTENDED_KEY_USAGE, "extendedKeyUsage"),
    (OID_PKIX_AUTHORITY_INFO_ACCESS, "authorityInfoAccess"),
];

/// The short name of `oid`, if the core knows it.
pub(crate) fn short_name(oid: &Oid<'_>) -> Option<&'static str> {
    NAMES.iter().find(|(o, _)| o == oid).map(|(_, n)| *n)
}

/// `name (dotted)` for a known OID, `OID dotted` otherwise: what error messages show.
pub(crate) fn describe(oid: &Oid<'_>) -> String {
    match short_name(oid) {
        Some(name) => format!("{name} ({})", oid.to_id_string()),
        None => format!("OID {}", oid.to_id_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_oids_have_their_dotted_form() {
        assert_eq!(OID_PKCS1_MGF1.to_id_string(), "1.2.840.113549.1.1.8");
        assert_eq!(OID_SECP256K1.to_id_string(), "1.3.132.0.10");
        assert_eq!(
            describe(&OID_PKCS1_SHA1WITHRSA),
            "sha1WithRSAEncryption (1.2.840.113549.1.1.5)"
        );
        assert_eq!(describe(&oid!(1.2.3)), "OID 1.2.3");
    }
}
