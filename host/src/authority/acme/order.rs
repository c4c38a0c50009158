//! ACME orders (RFC 8555 §7.4–7.6): newOrder (the directory's profile judges every identifier
//! first), authorizations and their deactivation, challenges handed to the validation queue,
//! finalize through the same sandbox and profile as `/v1/sign` (the CSR must name exactly the
//! order's identifiers; the order is valid only once the certificate is recorded), the
//! certificate, an account's orders, and revokeCert.

use std::sync::Arc;

use wasm_pki::wire::acme::{
    key_authorization, AcmeJws, Finalize, Identifier, NewOrder, ProblemKind, RevokeCert,
};

use super::config::ChallengeType;
use super::objects::{self, problem_value, Authz, Challenge, Order, Status, Stored};
use super::{random_id, AccountCaller, Caller, Refused};
use crate::authority::{now, Asked, Authority, AuthorityError, Credential, Signed, Then};
use crate::db::{AcmeKind, AcmeUpdate, Ledger};

/// How long a new order and its authorizations stay usable.
pub const ORDER_LIFETIME_SECS: i64 = 24 * 3600;
/// How long an order or challenge stored as `processing` (by an earlier version, which wrote
/// that state) stays so before another request may start it again.
const STALE_PROCESSING_SECS: i64 = 120;
/// The most orders an account's list shows.
pub const MAX_LISTED_ORDERS: usize = 1000;

impl Authority {
    /// newOrder (§7.4): every identifier must pass the directory's profile now (a wildcard
    /// only where the profile allows them and dns-01 is offered), and, for an account bound to
    /// a token with an identity, be that identity. One authorization per identifier.
    pub fn acme_new_order(
        &self,
        dir: &str,
        jws: &AcmeJws,
        caller: &AccountCaller,
    ) -> Result<(String, Order), Refused> {
        let directory = self
            .acme_directory(dir)
            .ok_or_else(|| Refused::internal("no such directory"))?
            .clone();
        let request: NewOrder = jws.payload_as()?;
        if request.not_before.is_some() || request.not_after.is_some() {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "notBefore and notAfter are not taken here: the directory's profile decides the lifetime",
            ));
        }
        let profile = self
            .policy
            .profiles
            .get(&directory.profile)
            .ok_or_else(|| {
                Refused::internal(format!("profile \"{}\" is gone", directory.profile))
            })?;
        let bound_identity = match &caller.account.doc.eab {
            Some(eab) => self.eab_identity(&eab.token_hash)?,
            None => None,
        };
        let mut problems = Vec::new();
        for id in &request.identifiers {
            let san = id.to_san();
            let verdict = profile
                .permits(&san)
                .map_err(|e| e.to_string())
                .and_then(|()| match &bound_identity {
                    Some(only) if only != &san => Err(format!(
                        "this account's enrolment token is for {only} only"
                    )),
                    _ => Ok(()),
                })
                .and_then(|()| {
                    if offered(&directory, id).is_empty() {
                        Err(match id {
                            Identifier::Ip(_) => "no challenge this directory offers validates an IP address (http-01 or tls-alpn-01)".to_string(),
                            _ if id.is_wildcard() => "a wildcard is validated by dns-01 only, which this directory does not offer".to_string(),
                            _ => "this directory offers no challenge".to_string(),
                        })
                    } else {
                        Ok(())
                    }
                });
            if let Err(why) = verdict {
                problems.push((id.clone(), why));
            }
        }
        if !problems.is_empty() {
            let detail = problems
                .iter()
                .map(|(id, why)| format!("{}: {why}", id.value()))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Refused::new(ProblemKind::RejectedIdentifier, detail));
        }
        let at = now();
        let expires = at + ORDER_LIFETIME_SECS;
        let order_id = random_id(16)?;
        let ledger = self.ledger.as_ref();
        let mut authzs = Vec::with_capacity(request.identifiers.len());
        let mut rows = Vec::with_capacity(request.identifiers.len() + 1);
        for id in &request.identifiers {
            let base = match id {
                Identifier::Dns(d) if id.is_wildcard() => Identifier::Dns(d[2..].to_string()),
                other => other.clone(),
            };
            let challenges = offered(&directory, id)
                .into_iter()
                .map(|c| {
                    Ok(Challenge {
                        kind: c.name().to_string(),
                        token: random_id(32)?,
                        status: Status::Pending,
                        validated: None,
                        error: None,
                        started: None,
                    })
                })
                .collect::<Result<Vec<_>, Refused>>()?;
            let authz = Authz {
                order: order_id.clone(),
                identifier: (&base).into(),
                wildcard: id.is_wildcard(),
                status: Status::Pending,
                expires,
                challenges,
            };
            let authz_id = random_id(16)?;
            rows.push(objects::row(
                AcmeKind::Authz,
                &authz_id,
                dir,
                &caller.id,
                None,
                &authz,
                at,
            )?);
            authzs.push(authz_id);
        }
        let order = Order {
            status: Status::Pending,
            expires,
            identifiers: request.identifiers.iter().map(Into::into).collect(),
            authzs,
            certificate: None,
            error: None,
            processing_since: None,
        };
        rows.push(objects::row(
            AcmeKind::Order,
            &order_id,
            dir,
            &caller.id,
            None,
            &order,
            at,
        )?);
        // The order and its authorizations in one transaction: one commit per order.
        if !ledger.acme_insert_all(&rows).map_err(Refused::ledger)? {
            return Err(Refused::internal("an order or authorization id collided"));
        }
        Ok((order_id, order))
    }

    /// The identity the token behind an EAB binds, if it binds one.
    fn eab_identity(&self, token_hash: &str) -> Result<Option<wasm_pki::SanName>, Refused> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let hash = Base64UrlUnpadded::decode_vec(token_hash)
            .map_err(|_| Refused::internal("a stored EAB key id"))?;
        let info = self
            .ledger
            .token_info(&hash)
            .map_err(Refused::ledger)?
            .ok_or_else(|| {
                Refused::new(
                    ProblemKind::Unauthorized,
                    "the enrolment token this account is bound to is gone",
                )
            })?;
        info.grant
            .identity
            .as_deref()
            .map(wasm_pki::SanName::parse)
            .transpose()
            .map_err(|e| Refused::internal(format!("the token's identity: {e}")))
    }

    /// An order of `caller` in `dir`, its state as of now (§7.1.6): pending becomes ready when
    /// every authorization is valid, invalid when one failed or the order expired.
    pub fn acme_order(
        &self,
        dir: &str,
        caller: &AccountCaller,
        order_id: &str,
    ) -> Result<Stored<Order>, Refused> {
        let ledger = self.ledger.as_ref();
        let mut order: Stored<Order> = Stored::load(ledger, AcmeKind::Order, order_id)?
            .filter(|o| o.row.directory == dir)
            .ok_or_else(|| Refused::new(ProblemKind::Malformed, "no such order"))?;
        if order.row.account != caller.id {
            return Err(Refused::new(
                ProblemKind::Unauthorized,
                "this order belongs to another account",
            ));
        }
        // Derived on every read, not written back: a pending order's state follows from its
        // authorizations (and the clock), so polling costs no ledger write.
        let (status, error) = self.order_state(&order.doc)?;
        order.doc.status = status;
        order.doc.error = error;
        Ok(order)
    }

    /// The state an order should be in now, with the problem that made it invalid.
    fn order_state(&self, order: &Order) -> Result<(Status, Option<serde_json::Value>), Refused> {
        let at = now();
        match order.status {
            Status::Pending => {
                let mut all_valid = true;
                for id in &order.authzs {
                    let authz: Stored<Authz> =
                        Stored::load(self.ledger.as_ref(), AcmeKind::Authz, id)?
                            .ok_or_else(|| Refused::internal("an authorization vanished"))?;
                    match authz_status(&authz.doc, at) {
                        Status::Valid => {}
                        Status::Pending => all_valid = false,
                        failed => {
                            let error = authz
                                .doc
                                .challenges
                                .iter()
                                .find_map(|c| c.error.clone())
                                .unwrap_or_else(|| {
                                    problem_value(&wasm_pki::wire::acme::AcmeError::new(
                                        ProblemKind::Unauthorized,
                                        format!(
                                            "the authorization for {} is {failed:?}",
                                            authz.doc.identifier.value
                                        ),
                                    ))
                                });
                            return Ok((Status::Invalid, Some(error)));
                        }
                    }
                }
                if at >= order.expires {
                    return Ok((Status::Invalid, order.error.clone()));
                }
                Ok((
                    if all_valid {
                        Status::Ready
                    } else {
                        Status::Pending
                    },
                    None,
                ))
            }
            Status::Ready if at >= order.expires => Ok((Status::Invalid, order.error.clone())),
            s => Ok((s, order.error.clone())),
        }
    }

    /// An authorization of `caller` (POST-as-GET), or its deactivation (§7.5.2, payload
    /// `{"status": "deactivated"}`).
    pub fn acme_authz(
        &self,
        dir: &str,
        jws: &AcmeJws,
        caller: &AccountCaller,
        authz_id: &str,
    ) -> Result<Stored<Authz>, Refused> {
        let ledger = self.ledger.as_ref();
        let mut authz = self.own_authz(dir, caller, authz_id)?;
        if jws.is_post_as_get() {
            authz.doc.status = authz_status(&authz.doc, now());
            self.show_validating(authz_id, &mut authz.doc);
            return Ok(authz);
        }
        let payload = jws.payload_json()?;
        if payload.get("status").and_then(|s| s.as_str()) != Some("deactivated") {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "an authorization may only be deactivated ({\"status\": \"deactivated\"})",
            ));
        }
        if !matches!(authz.doc.status, Status::Pending | Status::Valid) {
            return Err(Refused::new(
                ProblemKind::Malformed,
                format!(
                    "a {:?} authorization cannot be deactivated",
                    authz.doc.status
                ),
            ));
        }
        authz.doc.status = Status::Deactivated;
        match authz.save(ledger)? {
            AcmeUpdate::Done => Ok(authz),
            _ => Err(Refused::new(
                ProblemKind::Malformed,
                "the authorization changed meanwhile; send the request again",
            )),
        }
    }

    fn own_authz(
        &self,
        dir: &str,
        caller: &AccountCaller,
        authz_id: &str,
    ) -> Result<Stored<Authz>, Refused> {
        let authz: Stored<Authz> = Stored::load(self.ledger.as_ref(), AcmeKind::Authz, authz_id)?
            .filter(|a| a.row.directory == dir)
            .ok_or_else(|| Refused::new(ProblemKind::Malformed, "no such authorization"))?;
        if authz.row.account != caller.id {
            return Err(Refused::new(
                ProblemKind::Unauthorized,
                "this authorization belongs to another account",
            ));
        }
        Ok(authz)
    }

    /// A challenge of `caller`: POST-as-GET reads it; `{}` asks for validation (§7.5.1), which
    /// the bounded queue runs off the request path. Returns the authorization and the index of
    /// the challenge in it.
    pub fn acme_challenge(
        &self,
        dir: &str,
        jws: &AcmeJws,
        caller: &AccountCaller,
        authz_id: &str,
        kind: &str,
    ) -> Result<(Stored<Authz>, usize), Refused> {
        let mut authz = self.own_authz(dir, caller, authz_id)?;
        let index = authz
            .doc
            .challenges
            .iter()
            .position(|c| c.kind == kind)
            .ok_or_else(|| Refused::new(ProblemKind::Malformed, "no such challenge"))?;
        if jws.is_post_as_get() {
            self.show_validating(authz_id, &mut authz.doc);
            return Ok((authz, index));
        }
        let _: wasm_pki::wire::acme::ChallengeResponse = jws.payload_as()?;
        let at = now();
        let challenge = &authz.doc.challenges[index];
        // Processing is not written to the ledger (one commit less per challenge); a challenge
        // stored as processing was left so by an earlier version, and is taken over when stale.
        let stale = challenge.status == Status::Processing
            && challenge
                .started
                .is_some_and(|s| at - s > STALE_PROCESSING_SECS);
        let startable = authz_status(&authz.doc, at) == Status::Pending
            && (challenge.status == Status::Pending || stale);
        let key = format!("{authz_id}/{index}");
        if !startable || !self.acme.validating.lock().unwrap().insert(key.clone()) {
            // Already being validated here, done, or the authorization moved on: the state is
            // the answer.
            self.show_validating(authz_id, &mut authz.doc);
            return Ok((authz, index));
        }
        let started = || -> Result<(), Refused> {
            let directory = self
                .acme_directory(dir)
                .ok_or_else(|| Refused::internal("no such directory"))?
                .clone();
            let challenge_type = *directory
                .challenges
                .iter()
                .find(|c| c.name() == kind)
                .ok_or_else(|| {
                    Refused::new(
                        ProblemKind::Malformed,
                        "the directory no longer offers this challenge",
                    )
                })?;
            let token = authz.doc.challenges[index].token.clone();
            let job = super::validate::Job {
                challenge: challenge_type,
                identifier: authz.doc.identifier.parse()?,
                token: token.clone(),
                key_authorization: key_authorization(&token, &caller.key),
                directory,
            };
            let ledger_for_done: Arc<dyn Ledger> = self.ledger.clone();
            let validating = self.acme.validating.clone();
            let (id, key) = (authz_id.to_string(), key.clone());
            let validator = self
                .acme
                .validator
                .as_ref()
                .ok_or_else(|| Refused::internal("no validation queue runs"))?;
            validator
                .submit(
                    job,
                    Box::new(move |outcome| {
                        complete(ledger_for_done.as_ref(), &id, index, outcome);
                        validating.lock().unwrap().remove(&key);
                    }),
                )
                .map_err(|_| {
                    Refused::new(
                        ProblemKind::RateLimited,
                        "the validation queue is full; ask again shortly",
                    )
                })
        };
        if let Err(e) = started() {
            self.acme.validating.lock().unwrap().remove(&key);
            return Err(e);
        }
        authz.doc.challenges[index].status = Status::Processing;
        authz.doc.challenges[index].started = Some(at);
        Ok((authz, index))
    }

    /// Show the challenges of `authz` that this signer is validating now as processing.
    fn show_validating(&self, authz_id: &str, authz: &mut Authz) {
        let validating = self.acme.validating.lock().unwrap();
        if validating.is_empty() {
            return;
        }
        for (i, c) in authz.challenges.iter_mut().enumerate() {
            if c.status == Status::Pending && validating.contains(&format!("{authz_id}/{i}")) {
                c.status = Status::Processing;
            }
        }
    }

    /// finalize (§7.4): the order must be ready; the CSR goes through the sandbox under the
    /// directory's profile with the order's identifiers as the exact names; a token-bound
    /// account spends a use of its token. The order is valid only once the certificate is
    /// recorded; a refused CSR leaves it ready (`badCSR`).
    pub fn acme_finalize(
        &self,
        dir: &str,
        jws: &AcmeJws,
        caller: &AccountCaller,
        order_id: &str,
    ) -> Result<Stored<Order>, Refused> {
        let request: Finalize = jws.payload_as()?;
        let mut order = self.acme_order(dir, caller, order_id)?;
        let at = now();
        // An order left "processing" by a signer that stopped mid-finalize (earlier versions
        // wrote that state first) may be finalized again once it is stale.
        let taken_over = order.doc.status == Status::Processing
            && order
                .doc
                .processing_since
                .is_some_and(|s| at - s > STALE_PROCESSING_SECS);
        if order.doc.status != Status::Ready && !taken_over {
            return Err(Refused::new(
                ProblemKind::OrderNotReady,
                format!("the order is {:?}, not ready", order.doc.status).to_lowercase(),
            ));
        }
        let names = order
            .doc
            .identifiers
            .iter()
            .map(|i| i.parse().map(|i| i.to_san()))
            .collect::<Result<Vec<_>, _>>()?;
        let csr_pem = pem_rfc7468::encode_string(
            "CERTIFICATE REQUEST",
            pem_rfc7468::LineEnding::LF,
            &request.csr,
        )
        .map_err(|e| Refused::new(ProblemKind::BadCsr, format!("the CSR: {e}")))?;
        let directory = self
            .acme_directory(dir)
            .ok_or_else(|| Refused::internal("no such directory"))?
            .clone();
        // No "processing" write first: the order becomes valid in the certificate record's own
        // transaction, from the version read here (one commit per finalize). Of two concurrent
        // finalizes, the second one's record finds the order moved, and neither its certificate
        // nor its order write is kept.
        let (row, doc) = (order.row.clone(), order.doc.clone());
        let then = Then(Arc::new(move |serial: &str| {
            let mut doc = doc.clone();
            finalized(&mut doc, serial);
            let mut row = row.clone();
            row.body =
                serde_json::to_string(&doc).map_err(|e| format!("encoding an order: {e}"))?;
            Ok(row)
        }));
        let asked = Asked {
            exact_names: Some(names),
            then: Some(then),
            ..Asked::default()
        };
        let origin = format!("acme:{dir}");
        let signed = match &caller.account.doc.eab {
            None => self.sign(
                &csr_pem,
                Credential::Acme {
                    origin: &origin,
                    profile: &directory.profile,
                },
                &asked,
            ),
            Some(eab) => self.sign_for_eab(&eab.token_hash, &directory.profile, &csr_pem, &asked),
        };
        match signed {
            Ok(signed) => {
                // As the record's transaction wrote it.
                finalized(&mut order.doc, &signed.serial);
                order.row.version += 1;
                tracing::info!(directory = dir, account = %caller.id, order = order_id, serial = %signed.serial, "acme order finalized");
                Ok(order)
            }
            Err(AuthorityError::Moved(_)) => Err(Refused::new(
                ProblemKind::OrderNotReady,
                "the order was finalized by another request",
            )),
            Err(e) => Err(finalize_refusal(e)),
        }
    }

    /// Sign for an account bound to a token: a use of the token is reserved, spent with the
    /// record, or given back when nothing was issued.
    fn sign_for_eab(
        &self,
        token_hash: &str,
        profile: &str,
        csr_pem: &str,
        asked: &Asked,
    ) -> Result<Signed, AuthorityError> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let hash = Base64UrlUnpadded::decode_vec(token_hash)
            .map_err(|_| AuthorityError::Internal("a stored EAB key id".into()))?;
        self.spend_hash(&hash, Some(profile), csr_pem, asked, false)
    }

    /// The certificate of an order of `caller` (the leaf and the chain, PEM).
    pub fn acme_certificate(
        &self,
        dir: &str,
        caller: &AccountCaller,
        order_id: &str,
    ) -> Result<String, Refused> {
        let order = self.acme_order(dir, caller, order_id)?;
        let serial = order
            .doc
            .certificate
            .as_deref()
            .ok_or_else(|| Refused::new(ProblemKind::Malformed, "no certificate yet"))?;
        let record = self
            .ledger
            .find(serial)
            .map_err(Refused::ledger)?
            .ok_or_else(|| Refused::internal("the order's certificate is not in the ledger"))?;
        let mut chain = record.pem;
        for c in &self.chain {
            if !chain.ends_with('\n') {
                chain.push('\n');
            }
            chain.push_str(c);
        }
        Ok(chain)
    }

    /// The ids of `caller`'s orders, oldest first (at most [`MAX_LISTED_ORDERS`]).
    pub fn acme_orders(&self, caller: &AccountCaller) -> Result<Vec<String>, Refused> {
        Ok(self
            .ledger
            .acme_list(AcmeKind::Order, &caller.id, MAX_LISTED_ORDERS)
            .map_err(Refused::ledger)?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// revokeCert (§7.6): by the key of the certificate itself (`jwk`), or by the account whose
    /// order it was. Only certificates in this CA's ledger; a revoked one is `alreadyRevoked`.
    /// The reason code is checked by the codec; the CRL lists the serial from now on.
    pub fn acme_revoke(&self, dir: &str, jws: &AcmeJws, caller: &Caller) -> Result<(), Refused> {
        let request: RevokeCert = jws.payload_as()?;
        let cert = wasm_pki::Certificate::from_der(request.certificate.clone())
            .map_err(|e| Refused::new(ProblemKind::Malformed, format!("the certificate: {e}")))?;
        let serial = cert.serial_hex();
        let record = self
            .ledger
            .find(&serial)
            .map_err(Refused::ledger)?
            .filter(|r| r.fingerprint == cert.fingerprint_sha256())
            .ok_or_else(|| {
                Refused::new(
                    ProblemKind::Malformed,
                    "the certificate was not issued by this CA",
                )
            })?;
        let allowed = match caller {
            Caller::Key(key) => {
                key.spki_der()
                    == cert
                        .public_key()
                        .map(|k| k.spki_der().to_vec())
                        .unwrap_or_default()
            }
            Caller::Account(a) => self
                .ledger
                .acme_list(AcmeKind::Order, &a.id, MAX_LISTED_ORDERS)
                .map_err(Refused::ledger)?
                .into_iter()
                .filter(|r| r.directory == dir)
                .filter_map(|r| Stored::<Order>::from_row(r).ok())
                .any(|o| o.doc.certificate.as_deref() == Some(serial.as_str())),
        };
        if !allowed {
            return Err(Refused::new(
                ProblemKind::Unauthorized,
                "neither the certificate's key nor the account that ordered it signed this request",
            ));
        }
        if record.revoked_at.is_some() {
            return Err(Refused::new(
                ProblemKind::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        self.revoke(&serial, false, request.reason)
            .map_err(Refused::from)?;
        tracing::info!(directory = dir, serial = %serial, reason = request.reason, "acme certificate revoked");
        Ok(())
    }
}

/// The challenges a directory offers for `id`: dns-01 only for a wildcard, never dns-01 for an
/// address (RFC 8738).
fn offered(directory: &super::config::AcmeDirectory, id: &Identifier) -> Vec<ChallengeType> {
    directory
        .challenges
        .iter()
        .copied()
        .filter(|c| match id {
            Identifier::Ip(_) => *c != ChallengeType::Dns01,
            _ if id.is_wildcard() => *c == ChallengeType::Dns01,
            _ => true,
        })
        .collect()
}

/// An authorization's state now: a pending or valid one past its expiry is expired; a
/// pending one with a valid challenge is valid, with every challenge invalid, invalid.
pub fn authz_status(authz: &Authz, at: i64) -> Status {
    match authz.status {
        Status::Pending | Status::Valid if at >= authz.expires => Status::Expired,
        s => s,
    }
}

/// An order made valid by the certificate with `serial`.
fn finalized(order: &mut Order, serial: &str) {
    order.status = Status::Valid;
    order.certificate = Some(serial.to_string());
    order.processing_since = None;
}

/// Record a validation's outcome: the challenge valid (and its authorization) or invalid (and
/// its authorization: one failed challenge ends it, as Let's Encrypt does).
fn complete(
    ledger: &dyn Ledger,
    authz_id: &str,
    index: usize,
    outcome: Result<(), wasm_pki::wire::acme::AcmeError>,
) {
    for _ in 0..5 {
        let mut authz: Stored<Authz> = match Stored::load(ledger, AcmeKind::Authz, authz_id) {
            Ok(Some(a)) => a,
            _ => return,
        };
        let Some(challenge) = authz.doc.challenges.get_mut(index) else {
            return;
        };
        // Pending as stored (processing lives in memory), or processing as an earlier version
        // stored it; anything else was settled meanwhile.
        if !matches!(challenge.status, Status::Pending | Status::Processing) {
            return;
        }
        match &outcome {
            Ok(()) => {
                challenge.status = Status::Valid;
                challenge.validated = Some(now());
                if authz.doc.status == Status::Pending {
                    authz.doc.status = Status::Valid;
                }
            }
            Err(e) => {
                challenge.status = Status::Invalid;
                challenge.error = Some(problem_value(e));
                if authz.doc.status == Status::Pending {
                    authz.doc.status = Status::Invalid;
                }
            }
        }
        match authz.save(ledger) {
            Ok(AcmeUpdate::Done) => {
                tracing::info!(authz = authz_id, outcome = ?outcome.as_ref().err().map(|e| e.detail.as_str()), "acme challenge validated");
                return;
            }
            Ok(_) => continue,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
    tracing::error!(
        authz = authz_id,
        "acme: a validation outcome could not be recorded"
    );
}

/// What a refused finalize answers: the CSR or the profile said no (`badCSR`), the token is
/// spent (`unauthorized`), or the CA is busy (503).
fn finalize_refusal(e: AuthorityError) -> Refused {
    match e {
        AuthorityError::Refused(g) if !matches!(g.code.as_str(), "encoding" | "chain") => {
            Refused::new(ProblemKind::BadCsr, g.message)
        }
        AuthorityError::TooLarge { .. } => {
            Refused::new(ProblemKind::BadCsr, "the CSR is too large")
        }
        AuthorityError::TokenExpired
        | AuthorityError::TokenUsed
        | AuthorityError::BadToken(_)
        | AuthorityError::Forbidden(_) => Refused::new(ProblemKind::Unauthorized, e.message()),
        other => Refused::from(other),
    }
}
