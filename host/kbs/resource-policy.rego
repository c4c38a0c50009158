# KBS resource policy for the wasm-pki plugin (Trustee external plugin, backend "wasm-pki").
# KBS evaluates it with the caller's attestation claims as `input` and the request as `data`:
#   {"plugin": "external", "resource-path": ["wasm-pki", "sign"], "query": {"profile": ..., "identity": ..., "csr": ...}}
# The plugin never sees the claims: this policy is what binds the identity in the query to the
# TEE that asks. Admin routes (tokens, revoke, certificates) never reach it: the plugin makes KBS
# demand its admin credential for them.
package policy

import rego.v1

default allow := false

# The identity the attestation proves: a SPIFFE ID from the `name` the pod's init-data declares
# (covered by the TEE's measurement). Where that claim sits depends on the attestation service's
# token format; this is the EAR token of Trustee's attestation service with init-data claims.
attested_name := input.submods.cpu0["ear.veraison.annotated-evidence"].init_data_claims.name

attested_identity := sprintf("spiffe://coco.example/pod/%s", [attested_name])

# Issuance: only under the TEE profile, only for the attested identity.
allow if {
	data.plugin == "external"
	data["resource-path"] == ["wasm-pki", "sign"]
	data.query.profile == "tee"
	data.query.identity == attested_identity
}

# The CA bundle and the trust bundle: any attested TEE.
allow if {
	data.plugin == "external"
	data["resource-path"] in [["wasm-pki", "ca"], ["wasm-pki", "bundle"]]
}
