// Types of the wasm-pki API. Every failure throws a WasmPkiError.

/** Key algorithms wasm-pki generates and signs with. */
export type Algorithm = 'p256' | 'ed25519';

/** Stable error codes (error.code). */
export type ErrorCode =
  | 'too_large' | 'bad_pem' | 'malformed' | 'unsupported_algorithm' | 'algorithm_mismatch'
  | 'invalid_key' | 'bad_signature' | 'passphrase' | 'invalid_name' | 'policy'
  | 'invalid_parameter' | 'chain' | 'encoding'
  | 'proof_malformed' | 'proof_signature' | 'proof_expired' | 'proof_audience'
  | 'jwt_malformed' | 'jwt_signature' | 'jwt_expired' | 'jwt_audience';

/** The Error every function throws: `message` says what was wrong, `code` is stable. */
export interface WasmPkiError extends Error { code: ErrorCode }

/** A public key as a JSON Web Key (public members only). */
export interface Jwk {
  kty: 'EC' | 'OKP' | 'RSA';
  crv?: 'P-256' | 'Ed25519';
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

/** A key pair that lives inside the WebAssembly module. */
export declare class Key {
  private constructor();
  readonly algorithm: Algorithm;
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem(): string;
  /** PKCS#8 PEM; with a passphrase, encrypted PKCS#8 (PBES2, scrypt, AES-256-CBC). */
  privateKeyPem(passphrase?: string): string;
  publicKeyJwk(): Jwk;
  /** SHA-256 of the SubjectPublicKeyInfo, hex. */
  fingerprint(): string;
  /** Sign bytes: r‖s for P-256 (as WebCrypto ECDSA/SHA-256 produces), 64 bytes for Ed25519. */
  sign(data: Uint8Array): Uint8Array;
  /** Frees the key's memory (and zeroizes it) now rather than at garbage collection. */
  free(): void;
}

export declare function generateKey(algorithm: Algorithm): Key;
export declare function importKey(pem: string, passphrase?: string): Key;

/** What a CSR asks for: subject attributes and subject alternative names. */
export interface CsrRequest extends Subject {
  dnsNames?: string[];
  ipAddresses?: string[];
  /** URIs, e.g. spiffe://example.org/ns/prod/sa/web */
  uris?: string[];
  emails?: string[];
}

/** Subject attributes. */
export interface Subject {
  commonName?: string;
  organization?: string;
  organizationalUnit?: string;
  /** Two upper-case letters (ISO 3166). */
  country?: string;
  state?: string;
  locality?: string;
}

/** Verify a signature with a SubjectPublicKeyInfo PEM; false when it does not verify. */
export declare function verifySignature(publicKeyPem: string, data: Uint8Array, signature: Uint8Array): boolean;

/** Returns the CSR PEM. */
export declare function createCsr(key: Key, request: CsrRequest): string;
/**
 * A renewal proof for the signer's `POST /v1/renew`: a JWS (ES256 or EdDSA) signed by `key`, whose
 * header carries the certificate and whose audience is `audience` (the renew URL), valid for two
 * minutes and usable once. Send it as `Authorization: Bearer PROOF`: the key stays here.
 */
export declare function signRenewalProof(key: Key, certificatePem: string, audience: string): string;
/**
 * The CSR for a WebCrypto key pair (P-256 ECDSA or Ed25519; the private key may be
 * non-extractable, as the owner's page keeps it in IndexedDB): built in wasm, signed by WebCrypto.
 */
export declare function createCsr(key: WebCryptoKeyPair, request: CsrRequest): Promise<string>;
/** `signRenewalProof` for a WebCrypto key pair: the proof is signed by WebCrypto. */
export declare function signRenewalProof(key: WebCryptoKeyPair, certificatePem: string, audience: string): Promise<string>;
/** A CSR's CertificationRequestInfo for the key whose SubjectPublicKeyInfo is `spki`. */
export declare function csrUnsigned(spki: Uint8Array, request: CsrRequest): UnsignedCsr;
/** A renewal proof's signing input for the key whose SubjectPublicKeyInfo is `spki`. */
export declare function renewalProofUnsigned(spki: Uint8Array, certificatePem: string, audience: string): UnsignedRenewalProof;

/** A CSR built by the module, waiting for the signature of a key outside it. */
export class UnsignedCsr {
  private constructor();
  /** The DER CertificationRequestInfo the key signs. */
  readonly tbs: Uint8Array;
  /** 'ES256' (WebCrypto `{ name: 'ECDSA', hash: 'SHA-256' }`) or 'Ed25519'. */
  readonly algorithm: 'ES256' | 'Ed25519';
  /** The CSR PEM, given the signature over `tbs` as WebCrypto returns it; refused if it does not verify. */
  assemble(signature: Uint8Array): string;
  free(): void;
}

/** A renewal proof built by the module, waiting for the signature of the certificate's key. */
export class UnsignedRenewalProof {
  private constructor();
  /** The JWS signing input (`header.claims`) the key signs. */
  readonly signingInput: Uint8Array;
  /** 'ES256' or 'Ed25519'. */
  readonly algorithm: 'ES256' | 'Ed25519';
  /** The proof, given the raw signature over `signingInput`; refused if it does not verify. */
  assemble(signature: Uint8Array): string;
  free(): void;
}


/** Kinds of public keys wasm-pki accepts in CSRs and certificates (RSA too, unlike Algorithm). */
export type KeyKind = 'p256' | 'ed25519' | 'rsa';

/** The description `inspect` returns. */
export interface Description {
  kind: 'certificate' | 'csr';
  subject: string;
  issuer: string | null;
  names: { dns: string[]; ip: string[]; uri: string[]; email: string[]; other: string[] };
  /** `algorithm` is a display name ('P-256', 'RSA-2048'). */
  key: { algorithm: string; kind: { type: 'p256' } | { type: 'ed25519' } | { type: 'rsa'; bits: number }; fingerprintSha256: string; jwk: Jwk };
  signatureAlgorithm: string;
  serial: string | null;
  /** Unix seconds. */
  notBefore: number | null;
  notAfter: number | null;
  notBeforeText: string | null;
  notAfterText: string | null;
  isCa: boolean;
  pathLen: number | null;
  keyUsage: string[];
  extendedKeyUsage: string[];
  extensions: { oid: string; name: string; critical: boolean }[];
  fingerprintSha256: string;
  selfIssued: boolean;
}

/** Describe a certificate or a CSR (a CSR's signature is verified first). */
export declare function inspect(pem: string): Description;

/** A name pattern of a profile. */
export type NamePattern =
  | { type: 'dns'; value: string }
  | { type: 'ip'; value: string }
  | { type: 'uriPrefix'; value: string }
  | { type: 'emailDomain'; value: string }
  | { type: 'any' };

/**
 * Issuance profile: the same fields as the signer's TOML policy and the Rust `ProfileSpec`.
 * `{}` is the default: a server+client leaf for `options.identity` only, 24 h. Taking the CSR's
 * subject and names as they are (you hold the CA key and read the request) is the explicit
 * `{ acceptCsr: true }`.
 */
export interface Profile {
  /** Take the CSR's subject and any names it asks for; not with names.allow or spiffe. */
  acceptCsr?: boolean;
  keyTypes?: KeyKind[];
  rsaMinBits?: number;
  /** 'identity': the issuer decides the subject; 'csr': take the CSR's subject. */
  subjectFrom?: 'identity' | 'csr';
  subject?: Subject;
  names?: { allow?: NamePattern[]; deny?: NamePattern[]; allowWildcards?: boolean; maxNames?: number };
  spiffe?: { trustDomain: string; pathPrefix?: string };
  defaultLifetimeSecs?: number;
  maxLifetimeSecs?: number;
  usage?: 'server' | 'client' | 'serverAndClient';
  backdateSecs?: number;
  /** Renewal by the certificate's holder: allowed by default; expired ones refused unless a grace (at most 30 days) is set. */
  renewal?: { enabled?: boolean; expiredGraceSecs?: number };
  /** Issue intermediate CAs (CA:true, keyCertSign, cRLSign) instead of leaves: no host names, at most `spiffe://<trustDomain>`; needs `subject` or `subjectFrom: 'csr'`. */
  intermediate?: {
    pathLen?: number;
    /** DNS subtrees (`example.com` covers it and below) and CIDR blocks written into the intermediate. */
    nameConstraints?: { permittedDns?: string[]; excludedDns?: string[]; permittedIp?: string[]; excludedIp?: string[] };
  };
}

/** What the caller vouches for in one issue call (kept out of the profile, as in Rust). */
export interface IssueOptions {
  /** The identity you vouch for (DNS name, IP, e-mail or spiffe:// ID): always allowed, becomes the CN. */
  identity?: string;
  /** Requested lifetime; must not exceed maxLifetimeSecs. */
  lifetimeSecs?: number;
}

/** `checkRequest`'s options: the issue options, and the key type a request object stands for. */
export interface CheckOptions extends IssueOptions {
  /** The key a request object will be made with (default 'p256'); a CSR says its own. */
  keyType?: Algorithm;
}

/** A refusal as `ca.issue` throws it. */
export interface Refusal {
  code: ErrorCode;
  message: string;
}

/** One name of a checked request. */
export interface NameVerdict {
  /** `DNS:…`, `IP:…`, `URI:…` or `email:…`. */
  name: string;
  allowed: boolean;
  /** The caller's identity (`options.identity`): vouched for by the credential. */
  identity: boolean;
  /** Why the profile refuses this name. */
  error?: Refusal;
}

/** What `checkRequest` decided. */
export interface RequestVerdict {
  allowed: boolean;
  /** The refusal `ca.issue` would throw for this request and profile. */
  error?: Refusal;
  names: NameVerdict[];
  /** The subject the certificate would get (when allowed). */
  subject?: string;
  /** The lifetime it would get, seconds (when allowed). */
  lifetimeSecs?: number;
}

/**
 * The policy decision `ca.issue(request, profile, options)` would make, without a CA: a CSR PEM
 * (a malformed or badly signed one throws as `issue` does), or a request object as `createCsr`
 * takes it, judged before any key is made. Per name: allowed, or the profile's exact refusal.
 */
export declare function checkRequest(request: string | CsrRequest, profile?: Profile, options?: CheckOptions): RequestVerdict;

export interface CaOptions {
  commonName: string;
  organization?: string;
  algorithm?: Algorithm;
  validityDays?: number;
  pathLen?: number;
}

/** A certificate authority that lives inside the WebAssembly module. */
export declare class Ca {
  private constructor();
  certificatePem(): string;
  privateKeyPem(passphrase?: string): string;
  /** Issue a leaf for the CSR under `profile` (default `{}`); returns the certificate PEM. */
  issue(csrPem: string, profile?: Profile, options?: IssueOptions): string;
  /**
   * The same as `issue`, with the CSR's signature verified by the platform's crypto instead of
   * in wasm (P-256 by node:crypto in Node, P-256 and Ed25519 by WebCrypto in browsers): several
   * times faster for P-256. Refuses exactly the CSRs `issue` refuses; RSA is verified in wasm.
   */
  issueAsync(csrPem: string, profile?: Profile, options?: IssueOptions): Promise<string>;
  /** `issueAsync`'s first half: parse and check all but the signature's arithmetic. */
  beginIssue(csrPem: string, profile?: Profile, options?: IssueOptions): PendingIssue;
  /** `issueAsync`'s second half: `valid` is the verdict on `pending`; `undefined` verifies in wasm. */
  finishIssue(pending: PendingIssue, valid?: boolean): string;
  /** False for a CA whose key is a WebCrypto `CryptoKey`: `issueAsync` signs through WebCrypto. */
  readonly holdsKey: boolean;
  /** `finishIssue` for a CA whose key is outside the module: what that key must sign. */
  finishIssueUnsigned(pending: PendingIssue, valid?: boolean): UnsignedCertificate;
  free(): void;
}

/**
 * A WebCrypto key, as the platform's `CryptoKey` is shaped (declared here so that no DOM or Node
 * type library is needed): `crypto.subtle.generateKey(…)`'s keys fit it.
 */
export interface WebCryptoKey {
  readonly type: string;
  readonly algorithm: object;
  readonly extractable: boolean;
  readonly usages: readonly string[];
}

/** A WebCrypto key pair (`privateKey` may be non-extractable). */
export interface WebCryptoKeyPair {
  privateKey: WebCryptoKey;
  publicKey: WebCryptoKey;
}

/** A certificate built by the module, waiting for the signature of a CA key outside it. */
export class UnsignedCertificate {
  private constructor();
  /** The DER TBSCertificate the CA key signs. */
  readonly tbs: Uint8Array;
  /** 'ES256' (WebCrypto `{ name: 'ECDSA', hash: 'SHA-256' }`) or 'Ed25519'. */
  readonly algorithm: 'ES256' | 'Ed25519';
  /** The certificate PEM, given the signature over `tbs` as WebCrypto returns it (P-256: r‖s). */
  assemble(signature: Uint8Array): string;
  free(): void;
}

/** An issue call between `beginIssue` and `finishIssue`; every field is `undefined` for RSA. */
export class PendingIssue {
  private constructor();
  /** 'ES256' (ECDSA P-256 with SHA-256, r‖s) or 'Ed25519'. */
  readonly algorithm: 'ES256' | 'Ed25519' | undefined;
  /** Raw public key: P-256 uncompressed point, Ed25519 32 bytes. */
  readonly publicKey: Uint8Array | undefined;
  /** The key as SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array | undefined;
  /** The signed bytes. */
  readonly message: Uint8Array | undefined;
  /** The signature, 64 bytes. */
  readonly signature: Uint8Array | undefined;
  free(): void;
}

export declare function createCa(options: CaOptions): Ca;
/**
 * A root CA whose key is a WebCrypto key pair (P-256 ECDSA or Ed25519; the private key may be
 * non-extractable): the certificate is built in wasm and signed by WebCrypto, and so is every
 * certificate `issueAsync` issues. The key never enters wasm memory; `issue` and `privateKeyPem`
 * refuse.
 */
export declare function createCa(options: CaOptions & { key: WebCryptoKeyPair }): Promise<Ca>;
export declare function loadCa(certPem: string, keyPem: string, passphrase?: string): Ca;
/** A CA from its certificate and its WebCrypto private key (see `createCa` with `key`). */
export declare function loadCa(certPem: string, key: WebCryptoKey): Ca;
/** A CA from its certificate alone: it builds (`finishIssueUnsigned`), never signs. */
export declare function loadCaCertificate(certPem: string): Ca;
/** A self-signed root's TBS for the key whose SubjectPublicKeyInfo is `spki`. */
export declare function rootUnsigned(options: CaOptions, spki: Uint8Array): UnsignedCertificate;

export interface VerifiedChain {
  /** Subjects from leaf to root. */
  subjects: string[];
  /** Earliest notAfter along the chain, Unix seconds. */
  validUntil: number;
}

/** Verify leaf → intermediates → trusted root (last) at atTimeMs (default now). */
export declare function verifyChain(pems: string | string[], atTimeMs?: number): VerifiedChain;
