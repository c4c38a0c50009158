# KBS resource policy for the wasm-pki plugin (Trustee external plugin, backend "wasm-pki").
# KBS evaluates `data.policy.allow` with the verified attestation token's claims as `input` and
# the request as `data`:
#   {"plugin": "external", "resource-path": ["wasm-pki", "sign"], "query": {"profile": ..., "identity": ..., "csr": ...}}
# The plugin never sees the claims: this policy is what binds the identity in the query to the
# TEE that asks, and what refuses a TEE the attestation service did not trust. Admin routes
# (tokens, revoke, certificates) never reach it: the plugin makes KBS demand its admin credential.
# It fails closed: anything it does not recognise is denied. Tested with regorus, the engine KBS
# uses (host/tests/kbs.rs).
package policy

import rego.v1

default allow := false

# Evidence from Trustee's *sample* attester (a guest outside any TEE; its verifier checks
# nothing) is refused, as Trustee's own default resource policy does. Set to true only on a test
# bench, never where certificates matter.
allow_sample_attester := false

# The claims read, all from the EAR token of Trustee's attestation service (submodule `cpu0`,
# the CPU TEE):
#   ear.status: the attestation service's verdict from the trust vector its attestation policy
#     computed against the reference values: "affirming" (every claim within its trusted
#     range), "warning", "contraindicated" or "none". Only "affirming" may obtain a certificate.
#   ear.veraison.annotated-evidence: the verified evidence. Its one key named after the TEE
#     type (tdx, snp, az-snp-vtpm, sample, ...) says which attester produced it; and
#     init_data_claims holds the pod's init-data (covered by the TEE's measurement, so the TEE
#     cannot choose it), from which the identity comes.
tee := input.submods.cpu0

evidence := tee["ear.veraison.annotated-evidence"]

# Every submodule (a GPU's too, when there is one) must be affirming, cpu0 among them.
affirmed if {
	tee["ear.status"] == "affirming"
	every sub in input.submods {
		sub["ear.status"] == "affirming"
	}
}

trusted_attester if {
	evidence
	not evidence.sample
}

trusted_attester if allow_sample_attester

# The identity the attestation proves: a SPIFFE ID from the `name` the pod's init-data declares.
attested_name := evidence.init_data_claims.name

attested_identity := sprintf("spiffe://coco.example/pod/%s", [attested_name]) if {
	is_string(attested_name)
	attested_name != ""
	not contains(attested_name, "/")
}

# Issuance: an affirmed TEE of a real attester, only under the TEE profile, only for its own
# attested identity.
allow if {
	data.plugin == "external"
	data["resource-path"] == ["wasm-pki", "sign"]
	affirmed
	trusted_attester
	data.query.profile == "tee"
	data.query.identity == attested_identity
}

# The CA certificate and the trust bundle (public material): any TEE KBS attested, whatever the
# verdict, so that a pod can at least verify its peers; the sample attester only when allowed.
allow if {
	data.plugin == "external"
	data["resource-path"] in [["wasm-pki", "ca"], ["wasm-pki", "bundle"]]
	trusted_attester
}
