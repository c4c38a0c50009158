//! The SPIFFE trust bundle: a JWK Set with one `x509-svid` key per CA certificate (the SPIFFE
//! Trust Domain and Bundle specification, section 4), as a bundle endpoint serves it.

use base64ct::{Base64, Encoding};
use serde::Serialize;

use crate::certificate::Certificate;
use crate::error::Result;
use crate::public_key::Jwk;
use crate::wire::jwt_svid::JwtAuthority;

/// One bundle key: the CA certificate's public key, with the certificate itself in `x5c`.
#[derive(Serialize)]
struct BundleKey {
    #[serde(rename = "use")]
    use_: &'static str,
    #[serde(flatten)]
    jwk: Jwk,
    x5c: [String; 1],
}

#[derive(Serialize)]
struct BundleDoc {
    keys: Vec<serde_json::Value>,
    spiffe_sequence: u64,
    spiffe_refresh_hint: u64,
}

/// The bundle document for `authorities` (each a CA certificate, in the order given; duplicates
/// are listed once) and the JWT authorities `jwt` (`use: jwt-svid`, with their `kid`), with
/// `sequence` (which only grows as the set changes) and a refresh hint in seconds. No `kid` on
/// X.509 authorities: they have none.
pub fn trust_bundle(
    authorities: &[Certificate],
    jwt: &[JwtAuthority],
    sequence: u64,
    refresh_hint_secs: u64,
) -> Result<String> {
    let mut keys: Vec<BundleKey> = Vec::with_capacity(authorities.len());
    let mut seen: Vec<&[u8]> = Vec::new();
    for cert in authorities {
        if seen.contains(&cert.der()) {
            continue;
        }
        seen.push(cert.der());
        keys.push(BundleKey {
            use_: "x509-svid",
            jwk: cert.public_key()?.to_jwk(),
            x5c: [Base64::encode_string(cert.der())],
        });
    }
    let doc = BundleDoc {
        keys: keys
            .into_iter()
            .map(|k| serde_json::to_value(k).unwrap_or_default())
            .chain(jwt.iter().map(JwtAuthority::to_bundle_jwk))
            .collect(),
        spiffe_sequence: sequence,
        spiffe_refresh_hint: refresh_hint_secs,
    };
    serde_json::to_string_pretty(&doc).map_err(|e| crate::Error::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaParams, CertificateAuthority, SeedRng};

    #[test]
    fn one_key_per_certificate_with_its_parameters() {
        let mut rng = SeedRng::from_seed([3; 32]);
        let now = crate::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let root = CertificateAuthority::new_root(&CaParams::new("r"), now, &mut rng).unwrap();
        let mut p = CaParams::new("i");
        p.algorithm = crate::Algorithm::Ed25519;
        let int = root.new_intermediate(&p, now, &mut rng).unwrap();
        let certs = [
            int.certificate().clone(),
            root.certificate().clone(),
            root.certificate().clone(),
        ];
        let jwt = JwtAuthority::new(root.certificate().public_key().unwrap());
        let text = trust_bundle(&certs, std::slice::from_ref(&jwt), 7, 300).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["spiffe_sequence"], 7);
        assert_eq!(v["spiffe_refresh_hint"], 300);
        let all = v["keys"].as_array().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2]["use"], "jwt-svid");
        assert_eq!(all[2]["kid"], jwt.kid.as_str());
        assert_eq!(JwtAuthority::from_jwk(&all[2]).unwrap().kid, jwt.kid);
        let keys = &all[..2];
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kty"], "OKP");
        assert_eq!(keys[0]["crv"], "Ed25519");
        assert_eq!(keys[1]["kty"], "EC");
        assert_eq!(keys[1]["crv"], "P-256");
        for k in keys {
            assert_eq!(k["use"], "x509-svid");
            assert!(k.get("kid").is_none());
            assert_eq!(k["x5c"].as_array().unwrap().len(), 1);
        }
    }
}
