//! ACME accounts (RFC 8555 §7.3): newAccount (one account per key and directory, external
//! account binding to an enrolment token), contact updates, deactivation, and keyChange.

use base64ct::{Base64UrlUnpadded, Encoding};
use wasm_pki::wire::acme::{
    AccountUpdate, AcmeJws, ExternalAccountBinding, KeyChange, NewAccount, ProblemKind,
};

use super::objects::{self, Account, EabBinding, Status, Stored};
use super::{random_id, AccountCaller, Caller, Refused};
use crate::authority::{now, tokens, Authority};
use crate::db::{AcmeKind, AcmeUpdate};

/// What newAccount did.
pub struct AccountAnswer {
    /// The account's id.
    pub id: String,
    /// The account.
    pub account: Account,
    /// Whether it was made now (201) rather than found (200).
    pub created: bool,
}

impl Authority {
    /// newAccount (§7.3): the account of the signing key in directory `dir`, found or made.
    /// `onlyReturnExisting` makes nothing. A directory that requires external account binding
    /// refuses a new account without one; a binding names an enrolment token of the directory's
    /// profile (by its hash) and is MACed with the key derived for it.
    pub fn acme_new_account(
        &self,
        dir: &str,
        jws: &AcmeJws,
        caller: &Caller,
    ) -> Result<AccountAnswer, Refused> {
        let Caller::Key(key) = caller else {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "newAccount carries the new account's key as jwk",
            ));
        };
        let directory = self
            .acme_directory(dir)
            .ok_or_else(|| Refused::new(ProblemKind::Malformed, "no such directory"))?
            .clone();
        let request: NewAccount = jws.payload_as()?;
        let thumbprint = key.thumbprint();
        let ledger = self.ledger.as_ref();
        if let Some(row) = ledger
            .acme_by_key(AcmeKind::Account, dir, &thumbprint)
            .map_err(Refused::ledger)?
        {
            let found: Stored<Account> = Stored::from_row(row)?;
            return Ok(AccountAnswer {
                id: found.row.id,
                account: found.doc,
                created: false,
            });
        }
        if request.only_return_existing == Some(true) {
            return Err(Refused::new(
                ProblemKind::AccountDoesNotExist,
                "no account has this key",
            ));
        }
        if directory.terms_of_service.is_some() && request.terms_of_service_agreed != Some(true) {
            return Err(Refused::new(
                ProblemKind::UserActionRequired,
                "agree to the terms of service (termsOfServiceAgreed: true)",
            ));
        }
        let eab = match &request.external_account_binding {
            None if directory.require_eab => {
                return Err(Refused::new(
                    ProblemKind::ExternalAccountRequired,
                    "this directory requires an external account binding: ask the operator for `wasm-pki token create --acme` output",
                ))
            }
            None => None,
            Some(value) => Some(self.acme_check_eab(
                &directory.profile,
                &ExternalAccountBinding::decode(value, jws)?,
            )?),
        };
        let id = random_id(16)?;
        let account = Account {
            status: Status::Valid,
            jwk: key.canonical_jwk().to_string(),
            contact: request.contact,
            tos_agreed: request.terms_of_service_agreed == Some(true),
            eab,
        };
        if !objects::insert(
            ledger,
            AcmeKind::Account,
            &id,
            (dir, &id, Some(&thumbprint)),
            &account,
            now(),
        )? {
            // Another request made an account for this key meanwhile: answer that one.
            let row = ledger
                .acme_by_key(AcmeKind::Account, dir, &thumbprint)
                .map_err(Refused::ledger)?
                .ok_or_else(|| Refused::internal("an account id collided"))?;
            let found: Stored<Account> = Stored::from_row(row)?;
            return Ok(AccountAnswer {
                id: found.row.id,
                account: found.doc,
                created: false,
            });
        }
        tracing::info!(directory = dir, account = %id, eab = account.eab.as_ref().map(|e| e.token_id.as_str()), "acme account created");
        Ok(AccountAnswer {
            id,
            account,
            created: true,
        })
    }

    /// The token an EAB names (its key id is the token's hash, base64url): the MAC must verify
    /// with the key derived for it, and the token must be usable and of `profile`.
    fn acme_check_eab(
        &self,
        profile: &str,
        eab: &ExternalAccountBinding,
    ) -> Result<EabBinding, Refused> {
        let kid = eab.key_id();
        let unauthorized = |m: &str| Refused::new(ProblemKind::Unauthorized, m.to_string());
        let hash = Base64UrlUnpadded::decode_vec(kid)
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or_else(|| unauthorized("the EAB key id is not one this CA gave out"))?;
        eab.verify(super::derive_eab(&self.acme.eab, kid).as_ref())?;
        let info = self
            .ledger
            .token_info(&hash)
            .map_err(Refused::ledger)?
            .ok_or_else(|| unauthorized("the EAB key id is not one this CA gave out"))?;
        if info.expires_at <= now() {
            return Err(unauthorized("the EAB's token has expired"));
        }
        if info.uses_left <= 0 {
            return Err(unauthorized("the EAB's token has no uses left"));
        }
        if info.grant.profile != profile {
            return Err(unauthorized(&format!(
                "the EAB's token is for profile \"{}\", not this directory's",
                info.grant.profile
            )));
        }
        Ok(EabBinding {
            token_id: info.grant.id,
            token_hash: kid.to_string(),
        })
    }

    /// An account's own POST: POST-as-GET reads it; a payload updates its contacts or
    /// deactivates it (§7.3.2, §7.3.6). The URL's account must be the signer's.
    pub fn acme_update_account(
        &self,
        jws: &AcmeJws,
        caller: &mut AccountCaller,
        url_id: &str,
    ) -> Result<Account, Refused> {
        if caller.id != url_id {
            return Err(Refused::new(
                ProblemKind::Unauthorized,
                "an account may only read and change itself",
            ));
        }
        if jws.is_post_as_get() {
            return Ok(caller.account.doc.clone());
        }
        let update: AccountUpdate = jws.payload_as()?;
        if let Some(contact) = update.contact {
            caller.account.doc.contact = contact;
        }
        if update.deactivate {
            caller.account.doc.status = Status::Deactivated;
        }
        match caller.account.save(self.ledger.as_ref())? {
            AcmeUpdate::Done => Ok(caller.account.doc.clone()),
            _ => Err(Refused::new(
                ProblemKind::Malformed,
                "the account changed meanwhile; send the request again",
            )),
        }
    }

    /// keyChange (§7.3.5): the inner JWS, signed by the new key, names this account and its
    /// current key; the new key must not belong to another account of the directory.
    pub fn acme_key_change(
        &self,
        jws: &AcmeJws,
        caller: &mut AccountCaller,
        account_url: &str,
    ) -> Result<Account, Refused> {
        let change = KeyChange::decode(jws)?;
        if change.account() != account_url {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "the key change names another account",
            ));
        }
        if !change.old_key_matches(&caller.key) {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "oldKey is not the account's current key",
            ));
        }
        if !crate::sandbox::verify::verify(&change.signature_check()?) {
            return Err(Refused::new(
                ProblemKind::Malformed,
                "the inner JWS is not signed by the new key",
            ));
        }
        let new_key = change.new_key();
        caller.account.doc.jwk = new_key.canonical_jwk().to_string();
        caller.account.row.key = Some(new_key.thumbprint());
        match caller.account.save(self.ledger.as_ref())? {
            AcmeUpdate::Done => {
                tracing::info!(account = %caller.id, "acme account key changed");
                Ok(caller.account.doc.clone())
            }
            AcmeUpdate::KeyTaken => {
                let other = self
                    .ledger
                    .acme_by_key(
                        AcmeKind::Account,
                        &caller.account.row.directory,
                        &new_key.thumbprint(),
                    )
                    .map_err(Refused::ledger)?
                    .map(|r| r.id)
                    .unwrap_or_default();
                Err(Refused::KeyTaken { account: other })
            }
            AcmeUpdate::Stale => Err(Refused::new(
                ProblemKind::Malformed,
                "the account changed meanwhile; send the request again",
            )),
        }
    }
}

/// The EAB pair `wasm-pki token create --acme` prints for a token: the key id (the token's
/// hash, base64url) and the MAC key derived from `secret` (base64url).
pub fn eab_pair(secret: &[u8], token: &str) -> (String, zeroize::Zeroizing<String>) {
    let kid = Base64UrlUnpadded::encode_string(&tokens::hash(token));
    let key = super::eab_hmac_key(secret, &kid);
    let text = zeroize::Zeroizing::new(Base64UrlUnpadded::encode_string(key.as_ref()));
    (kid, text)
}
