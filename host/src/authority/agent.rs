//! The signer's side of node agents (`wasm-pki agent`): a node is authenticated by its node
//! certificate (the TLS client certificate: recorded here, of the `[agent]` node profile,
//! unrevoked, unexpired), and gets its own registration entries and X.509-SVIDs for them. Each
//! CSR is decided under the workload profile narrowed to exactly its entry (the entry's SPIFFE
//! ID as the identity, its DNS names as the only other names, its TTL), after the entry is
//! checked against the policy again. A node never names an identity: it names an entry of its
//! own, and the ledger says what that entry is.

use wasm_pki::{NamePattern, SubjectSource};

use super::entries;
use super::{now, Asked, Authority, AuthorityError, Credential, Signed};
use crate::db::Entry;

pub use wasm_pki::wire::agent::{EntryCsr, MAX_BATCH};

/// A node authenticated by its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The node's identity (what its enrolment token vouched for).
    pub identity: String,
    /// The node certificate's serial.
    pub serial: String,
}

/// A JWT-SVID the sandbox signed for an entry.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtSvid {
    /// The entry's SPIFFE ID (`sub`).
    pub spiffe_id: String,
    /// The token.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
}

impl Authority {
    /// The node `presented` (a verified TLS client certificate, DER) authenticates. Refused:
    /// no `[agent]` in the policy, a certificate not recorded here (or differing from its
    /// record), revoked, expired, or not of the node profile.
    pub fn node_of(&self, presented: &[u8]) -> Result<Node, AuthorityError> {
        let agent = self.policy.agent.as_ref().ok_or_else(|| {
            AuthorityError::Forbidden(
                "this signer serves no node agents (no [agent] in its policy)".into(),
            )
        })?;
        let cert = wasm_pki::Certificate::from_der(presented.to_vec()).map_err(|_| {
            AuthorityError::NotIssuedHere("the presented certificate does not parse".into())
        })?;
        let record = self
            .ledger
            .find(&cert.serial_hex())
            .map_err(|e| AuthorityError::from_ledger(e, ""))?
            .filter(|r| r.fingerprint == cert.fingerprint_sha256())
            .ok_or_else(|| {
                AuthorityError::NotIssuedHere("the certificate is not in this CA's ledger".into())
            })?;
        if record.revoked_at.is_some() {
            return Err(AuthorityError::Revoked);
        }
        if now() > record.not_after {
            return Err(AuthorityError::CertificateExpired);
        }
        if record.profile != agent.node_profile {
            return Err(AuthorityError::Forbidden(format!(
                "a certificate of profile {:?} is not a node certificate (profile {:?})",
                record.profile, agent.node_profile
            )));
        }
        let identity = record.identity.ok_or_else(|| {
            AuthorityError::Forbidden("the node certificate carries no enrolled identity".into())
        })?;
        Ok(Node {
            identity,
            serial: record.serial,
        })
    }

    /// The registration entries of `node` that fit the policy now.
    pub fn node_entries(&self, node: &Node) -> Result<Vec<Entry>, AuthorityError> {
        Ok(self
            .ledger
            .entries(Some(&node.identity))
            .map_err(|e| AuthorityError::from_ledger(e, ""))?
            .into_iter()
            .filter(|e| entries::check(&self.policy, e).is_ok())
            .collect())
    }

    /// Sign a batch of CSRs for `node`'s entries, each on its own (one refusal does not fail
    /// the others), in parallel over the sandbox pool. Every certificate is recorded (credential
    /// `node:NODE/entry:ID`, identity the SPIFFE ID) before it is returned.
    pub fn sign_for_entries(
        &self,
        node: &Node,
        batch: &[EntryCsr],
    ) -> Result<Vec<Result<Signed, AuthorityError>>, AuthorityError> {
        if batch.is_empty() || batch.len() > MAX_BATCH {
            return Err(AuthorityError::InvalidOrder(format!(
                "a batch holds 1 to {MAX_BATCH} CSRs"
            )));
        }
        let mine = self
            .ledger
            .entries(Some(&node.identity))
            .map_err(|e| AuthorityError::from_ledger(e, ""))?;
        let one = |item: &EntryCsr| -> Result<Signed, AuthorityError> {
            // Another node's entry and no entry at all are the same answer: nothing to see.
            let entry = mine.iter().find(|e| e.id == item.entry_id).ok_or_else(|| {
                AuthorityError::Forbidden(format!(
                    "no entry {:?} for this node",
                    item.entry_id.chars().take(64).collect::<String>()
                ))
            })?;
            self.sign_for_entry(entry, &item.csr)
        };
        let workers = self.sandbox.capacity().clamp(1, batch.len());
        let mut out: Vec<Option<Result<Signed, AuthorityError>>> =
            (0..batch.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let one = &one;
                    s.spawn(move || {
                        (w..batch.len())
                            .step_by(workers)
                            .map(|i| (i, one(&batch[i])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().unwrap_or_default() {
                    out[i] = Some(r);
                }
            }
        });
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(AuthorityError::Internal("a batch worker failed".into())))
            })
            .collect())
    }

    /// A JWT-SVID for `node`'s entry `entry_id` and `audience` (1 to 32 values), valid for the
    /// entry's JWT TTL, `iss` the first public URL when there is one. Signed in the sandbox with
    /// the JWT authority's key; JWT-SVIDs are not recorded (they are short-lived bearer tokens,
    /// as in SPIRE), but each is counted and logged by the API.
    pub fn sign_jwt_for_entry(
        &self,
        node: &Node,
        entry_id: &str,
        audience: &[String],
    ) -> Result<JwtSvid, AuthorityError> {
        let entry = self
            .ledger
            .entries(Some(&node.identity))
            .map_err(|e| AuthorityError::from_ledger(e, ""))?
            .into_iter()
            .find(|e| e.id == entry_id)
            .ok_or_else(|| {
                AuthorityError::Forbidden(format!(
                    "no entry {:?} for this node",
                    entry_id.chars().take(64).collect::<String>()
                ))
            })?;
        entries::check(&self.policy, &entry)
            .map_err(|e| AuthorityError::Forbidden(format!("entry {}: {e}", entry.id)))?;
        let signed =
            self.sign_jwt_svid(&entry.spiffe_id, audience, entry.jwt_ttl_secs.max(1) as u64)?;
        Ok(JwtSvid {
            spiffe_id: entry.spiffe_id,
            token: signed.token,
            expires_at: signed.expires_at,
        })
    }

    /// A JWT-SVID for `spiffe_id` and `audience`, valid `lifetime_secs` from now, `iss` the first
    /// public URL when there is one: signed by the JWT authority's key, in the sandbox or, with
    /// a key store, in the host after the guard has checked the guest's signing input. Nothing
    /// here authorizes the caller: `sign_jwt_for_entry` does, for an agent's entry.
    pub fn sign_jwt_svid(
        &self,
        spiffe_id: &str,
        audience: &[String],
        lifetime_secs: u64,
    ) -> Result<wasm_pki::protocol::JwtSigned, AuthorityError> {
        wasm_pki::wire::jwt_svid::check_audience(audience).map_err(AuthorityError::InvalidOrder)?;
        let request = wasm_pki::protocol::JwtRequest {
            spiffe_id: spiffe_id.to_string(),
            audience: audience.to_vec(),
            lifetime_secs,
            issuer: self
                .public_urls
                .first()
                .map(|u| u.trim_end_matches('/').to_string()),
            now: now(),
        };
        let Some(key) = &self.host_jwt_key else {
            return self
                .sandbox
                .call(
                    &wasm_pki::protocol::Request::SignJwt(request),
                    super::SANDBOX_WAIT,
                )?
                .map_err(AuthorityError::Refused);
        };
        let expires_at = request
            .now
            .saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX));
        let wanted = crate::keys::guard::ExpectedJwt {
            kid: &key.kid,
            spiffe_id,
            audience,
            issued_at: request.now,
            expires_at,
            issuer: request.issuer.as_deref(),
        };
        let bytes = wasm_pki::protocol::encode_request(&wasm_pki::protocol::Request::SignJwt(
            request.clone(),
        ))
        .map_err(|e| AuthorityError::Internal(e.to_string()))?;
        let done = std::cell::RefCell::new(super::keystore::Countersigned::default());
        let reply = self.sandbox.call_signing(
            &bytes,
            super::SANDBOX_WAIT,
            &mut |ask, _| key.sign(ask, &wanted, &mut done.borrow_mut()),
            &mut |reply| done.borrow().check_jwt(reply, expires_at),
        )?;
        wasm_pki::protocol::decode_reply(&reply)
            .map_err(|e| AuthorityError::from(crate::sandbox::CallError::BadReply(e.to_string())))?
            .map_err(AuthorityError::Refused)
    }

    fn sign_for_entry(&self, entry: &Entry, csr_pem: &str) -> Result<Signed, AuthorityError> {
        entries::check(&self.policy, entry)
            .map_err(|e| AuthorityError::Forbidden(format!("entry {}: {e}", entry.id)))?;
        let agent =
            self.policy.agent.as_ref().ok_or_else(|| {
                AuthorityError::Forbidden("this signer serves no node agents".into())
            })?;
        let profile = self
            .policy
            .profiles
            .get(&agent.workload_profile)
            .ok_or_else(|| AuthorityError::UnknownProfile(agent.workload_profile.clone()))?;
        // The profile narrowed to this entry: its SPIFFE ID (the identity) and its DNS names,
        // nothing else, whatever the profile's own name rules allow.
        let mut spec = profile.to_spec();
        spec.accept_csr = false;
        spec.subject_from = SubjectSource::Identity;
        spec.names.allow = entry
            .dns
            .iter()
            .map(|d| NamePattern::dns(d))
            .collect::<Result<_, _>>()
            .map_err(|e| AuthorityError::Internal(format!("entry {} DNS name: {e}", entry.id)))?;
        let narrowed = spec.build().map_err(|e| {
            AuthorityError::Internal(format!("narrowing the workload profile: {e}"))
        })?;
        let origin = format!("node:{}/entry:{}", entry.node, entry.id);
        let asked = Asked {
            lifetime_secs: Some(entry.x509_ttl_secs.max(1) as u64),
            extra_names: Vec::new(),
            ..Asked::default()
        };
        self.sign(
            csr_pem,
            Credential::Attested {
                origin: &origin,
                name: &agent.workload_profile,
                profile: &narrowed,
                identity: &entry.spiffe_id,
            },
            &asked,
        )
    }
}
