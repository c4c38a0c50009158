//! Where a CA publishes its certificate and its CRL (as Vault's `pki/config/urls`): relying
//! parties find them through the CRL Distribution Points and Authority Information Access
//! (caIssuers) extensions of every certificate the CA issues.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// id-ad-caIssuers (RFC 5280 4.2.2.1).
const CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];
/// id-pe-authorityInfoAccess.
const AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// URLs a CA's leaves point at. Empty lists add nothing to the certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicUrls {
    /// Where the DER CRL is served (`application/pkix-crl`): the CRL Distribution Points.
    pub crl: Vec<String>,
    /// Where the issuing CA's certificate is served in DER (`application/pkix-cert`): AIA caIssuers.
    pub ca_issuers: Vec<String>,
}

impl PublicUrls {
    /// Checks every URL: `http://` or `https://`, printable ASCII without spaces, at most 1 KiB.
    pub fn validate(&self) -> Result<()> {
        for u in self.crl.iter().chain(&self.ca_issuers) {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.len() <= 1024
                && u.len() > "https://".len()
                && u.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(Error::InvalidParameter(format!(
                    "public URL \"{}\": must be an http:// or https:// URL of printable ASCII",
                    u.escape_debug()
                )));
            }
        }
        Ok(())
    }

    /// The Authority Information Access extension (caIssuers only), or `None` without URLs.
    pub(crate) fn aia_extension(&self) -> Option<rcgen::CustomExtension> {
        if self.ca_issuers.is_empty() {
            return None;
        }
        let der = yasna::construct_der(|w| {
            w.write_sequence_of(|w| {
                for url in &self.ca_issuers {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&yasna::models::ObjectIdentifier::from_slice(CA_ISSUERS));
                        // GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String.
                        w.next().write_tagged_implicit(yasna::Tag::context(6), |w| {
                            w.write_ia5_string(url)
                        });
                    });
                }
            })
        });
        Some(rcgen::CustomExtension::from_oid_content(AIA, der))
    }

    /// The CRL Distribution Points for rcgen (one point with every CRL URL), or none.
    pub(crate) fn crl_distribution_points(&self) -> Vec<rcgen::CrlDistributionPoint> {
        if self.crl.is_empty() {
            return Vec::new();
        }
        vec![rcgen::CrlDistributionPoint {
            uris: self.crl.clone(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_of_printable_ascii() {
        let ok = PublicUrls {
            crl: vec!["http://ca.example.com:8443/v1/crl.der".into()],
            ca_issuers: vec!["https://ca.example.com/v1/ca.der".into()],
        };
        assert!(ok.validate().is_ok());
        for bad in [
            "ldap://x/y",
            "http://",
            "http://a b",
            "http://é.example",
            "file:///etc/passwd",
        ] {
            let urls = PublicUrls {
                crl: vec![bad.into()],
                ca_issuers: vec![],
            };
            assert!(urls.validate().is_err(), "{bad}");
        }
        assert!(PublicUrls::default().aia_extension().is_none());
        assert!(PublicUrls::default().crl_distribution_points().is_empty());
    }
}
