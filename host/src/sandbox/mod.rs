//! The wasm-pki module inside wasmtime: one `Engine`, the module compiled once (and cached on
//! disk, [`cache`]), an `InstancePre`, and a pool of instances that each hold the CA. Every call
//! runs under a memory cap and an epoch deadline; an instance that traps or hits a limit is
//! dropped. Requests and replies are the core's typed protocol (`wasm_pki::protocol`).

mod cache;
pub mod verify;

pub use verify::{verify, Verifier};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use wasm_pki::protocol::{
    self, GuestError, LoadCa, Loaded, Request, SignAsk, SignatureReply, Verdict, VerifyAsk,
};
use wasm_pki::SignatureCheck;
use wasmtime::{
    Config, Engine, InstancePre, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder,
    TypedFunc,
};
use zeroize::Zeroizing;

/// Memory one instance may grow to.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// How often the epoch ticks.
const TICK: Duration = Duration::from_millis(10);
/// Ticks a call may run: 2 s (an RSA-4096 CSR costs a few ms).
const DEADLINE_TICKS: u64 = 200;
/// Ticks loading the CA may run: 20 s. An encrypted CA and JWT key cost two scrypt derivations
/// in wasm (about a second each on an idle core), and the operator's own files are not hostile.
const LOAD_DEADLINE_TICKS: u64 = 2_000;

/// Why a sandbox call failed.
#[derive(Debug)]
pub enum CallError {
    /// The guest trapped or hit a limit; the instance was dropped.
    Trap(String),
    /// No instance became free in time.
    Busy,
    /// The host could not set up an instance.
    Setup(anyhow::Error),
    /// The guest answered something that is not the typed reply (a missing, renamed or unknown
    /// field): nothing it said is used.
    BadReply(String),
    /// The guest asked for a signature it must not have (the guard refused the TBS, a second
    /// ask, an ask where none belongs): nothing was signed and the instance was dropped.
    Violation(String),
    /// The key store could not sign now (an HSM gone): nothing was signed; worth a retry.
    KeyStore(String),
}

/// What answers a guest's sign ask: the ask, and the CSR signature check the host verified in
/// the same call (if any); the signature, or why not.
pub type SignFn<'a> = dyn FnMut(&SignAsk, Option<&SignatureCheck>) -> Result<Vec<u8>, Refusal> + 'a;

/// Why the host did not sign what a guest asked for.
#[derive(Debug)]
pub enum Refusal {
    /// The ask is one the guest should never make: the instance is dropped.
    Violation(String),
    /// The key store failed: the instance is fine.
    KeyStore(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Trap(m) => write!(f, "sandbox trapped: {m}"),
            CallError::Busy => f.write_str("all sandbox instances are busy"),
            CallError::Setup(e) => write!(f, "sandbox setup failed: {e:#}"),
            CallError::BadReply(m) => {
                write!(f, "the sandbox's reply does not follow the protocol: {m}")
            }
            CallError::Violation(m) => write!(f, "sandbox_violation: {m}"),
            CallError::KeyStore(m) => write!(f, "{m}"),
        }
    }
}

struct Worker {
    store: Store<StoreLimits>,
    memory: Memory,
    buffer: TypedFunc<u32, u32>,
    call: TypedFunc<u32, u32>,
    response: TypedFunc<(), u32>,
}

impl Worker {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.call_within(request, DEADLINE_TICKS)
    }

    fn call_within(&mut self, request: &[u8], ticks: u64) -> Result<Vec<u8>> {
        self.store.set_epoch_deadline(ticks);
        let ptr = self
            .buffer
            .call(&mut self.store, u32::try_from(request.len())?)?;
        if ptr == 0 {
            return Err(anyhow!(
                "request of {} bytes refused by the sandbox",
                request.len()
            ));
        }
        self.memory.write(&mut self.store, ptr as usize, request)?;
        let len = self.call.call(&mut self.store, request.len() as u32)? as usize;
        let ptr = self.response.call(&mut self.store, ())? as usize;
        let mut out = vec![0u8; len];
        self.memory.read(&self.store, ptr, &mut out)?;
        Ok(out)
    }

    /// Run the (encoded) CA-loading request in this instance.
    fn load(&mut self, init: &[u8]) -> Result<Loaded> {
        match protocol::decode_reply::<Loaded>(&self.call_within(init, LOAD_DEADLINE_TICKS)?)? {
            Ok(loaded) => Ok(loaded),
            Err(e) => Err(anyhow!("loading the CA into the sandbox: {e}")),
        }
    }
}

/// The sandboxed signer.
pub struct Sandbox {
    engine: Engine,
    pre: InstancePre<StoreLimits>,
    module_sha256: String,
    /// The request that loads the CA into each new instance (holds key material: never logged).
    init: Mutex<Option<Zeroizing<Vec<u8>>>>,
    idle: Mutex<Vec<Worker>>,
    free: Condvar,
    live: AtomicU64,
    size: u64,
    stop: Arc<AtomicBool>,
    /// Instances dropped after a trap or limit.
    pub traps: AtomicU64,
    /// Asks refused as violations (each dropped its instance too).
    pub violations: AtomicU64,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// SHA-256 (hex) of a file.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(wasm_pki::hex(&Sha256::digest(&bytes)))
}

impl Sandbox {
    /// Load (or compile and cache under `cache_dir`) the module file at `wasm`; see [`Sandbox::new`].
    pub fn from_file(wasm: &Path, cache_dir: &Path, size: usize) -> Result<Arc<Self>> {
        let bytes = std::fs::read(wasm)
            .with_context(|| format!("reading the module {}", wasm.display()))?;
        Self::new(&bytes, cache_dir, size)
    }

    /// Compile (or load from the cache under `cache_dir`) the module `bytes` and make a pool of
    /// `size` instances.
    pub fn new(bytes: &[u8], cache_dir: &Path, size: usize) -> Result<Arc<Self>> {
        let module_sha256 = wasm_pki::hex(&Sha256::digest(bytes));
        let mut config = Config::new();
        config.epoch_interruption(true);
        // WASM_PKI_PERFMAP=1: write /tmp/perf-PID.map so `perf` names the module's functions.
        if std::env::var_os("WASM_PKI_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // wasm-bindgen output uses reference types and an externref table.
        config
            .wasm_reference_types(true)
            .wasm_function_references(true)
            .wasm_gc(true)
            // Used only by the server build of the module (see scripts/build-pkg.sh --server).
            .wasm_wide_arithmetic(true);
        let engine = Engine::new(&config)?;
        let module = load_module(&engine, bytes, &module_sha256, cache_dir)?;
        let mut linker = Linker::new(&engine);
        // The JS imports of the npm build are never reached on the sandbox path: make them traps.
        linker.define_unknown_imports_as_traps(&module)?;
        let pre = linker.instantiate_pre(&module)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })?;
        Ok(Arc::new(Sandbox {
            engine,
            pre,
            module_sha256,
            init: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            free: Condvar::new(),
            live: AtomicU64::new(0),
            size: size.max(1) as u64,
            stop,
            traps: AtomicU64::new(0),
            violations: AtomicU64::new(0),
        }))
    }

    /// SHA-256 of the module file, hex.
    pub fn module_sha256(&self) -> &str {
        &self.module_sha256
    }

    /// Instances alive now (idle or busy); a trapped one is gone until a request makes a new one.
    pub fn instances(&self) -> u64 {
        self.live.load(Ordering::SeqCst)
    }

    /// The most instances the pool runs at once (its size).
    pub fn capacity(&self) -> usize {
        self.size as usize
    }

    /// The wasmtime engine (for tests and metrics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn new_worker(&self) -> Result<Worker> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(MEMORY_LIMIT)
            .trap_on_grow_failure(true)
            .instances(1)
            .build();
        let mut store = Store::new(&self.engine, limits);
        store.limiter(|l| l);
        store.set_epoch_deadline(DEADLINE_TICKS);
        store.epoch_deadline_trap();
        let instance = self.pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| anyhow!("the module exports no memory"))?;
        let mut w = Worker {
            buffer: instance.get_typed_func(&mut store, "wpki_buffer")?,
            call: instance.get_typed_func(&mut store, "wpki_call")?,
            response: instance.get_typed_func(&mut store, "wpki_response")?,
            store,
            memory,
        };
        if let Some(init) = self.init.lock().unwrap().as_ref() {
            w.load(init)?;
        }
        Ok(w)
    }

    /// Load the CA into every instance made from now on (and check it loads). Drops idle ones.
    pub fn load_ca(&self, load: LoadCa) -> Result<Loaded> {
        let req = protocol::encode_request(&Request::LoadCa(load))?;
        *self.init.lock().unwrap() = Some(req);
        self.idle.lock().unwrap().clear();
        let mut w = self.new_worker()?;
        let loaded = w.load(self.init.lock().unwrap().as_ref().expect("set above"))?;
        self.live.fetch_add(1, Ordering::SeqCst);
        self.release(w);
        Ok(loaded)
    }

    fn acquire(&self, wait: Duration) -> Result<Worker, CallError> {
        let mut idle = self.idle.lock().unwrap();
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(w) = idle.pop() {
                return Ok(w);
            }
            if self.live.load(Ordering::SeqCst) < self.size {
                self.live.fetch_add(1, Ordering::SeqCst);
                drop(idle);
                return self.new_worker().map_err(|e| {
                    self.live.fetch_sub(1, Ordering::SeqCst);
                    CallError::Setup(e)
                });
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(CallError::Busy);
            }
            idle = self.free.wait_timeout(idle, deadline - now).unwrap().0;
        }
    }

    fn release(&self, w: Worker) {
        self.idle.lock().unwrap().push(w);
        self.free.notify_one();
    }

    fn discard(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.traps.fetch_add(1, Ordering::Relaxed);
        self.free.notify_one();
    }

    /// Send one request and decode its typed reply `T`; waits up to `wait` for a free instance.
    pub fn call<T: DeserializeOwned>(
        &self,
        request: &Request,
        wait: Duration,
    ) -> Result<Result<T, GuestError>, CallError> {
        let bytes = protocol::encode_request(request).map_err(|e| CallError::Setup(e.into()))?;
        let out = self.call_bytes(&bytes, wait)?;
        protocol::decode_reply(&out).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// Send request bytes as they are (hostile-input tests, benchmarks) and return the reply's
    /// bytes as the guest wrote them. A guest that asks for a signature check (the CA was loaded
    /// with `host_verifies`) gets the host's verdict in the same instance, and its answer to that
    /// is the reply. The CA key is in the guest here: a sign ask is a violation.
    pub fn call_bytes(&self, request: &[u8], wait: Duration) -> Result<Vec<u8>, CallError> {
        let mut sign = |_: &SignAsk, _: Option<&SignatureCheck>| {
            Err(Refusal::Violation(
                "a sign ask, but the CA key is loaded in the guest".into(),
            ))
        };
        self.call_signing(request, wait, &mut sign, &mut |_| Ok(()))
    }

    /// [`Self::call_bytes`] for a CA whose key the host holds: a `{"sign": …}` ask goes to `sign`
    /// with the signature check the host verified in this call (if any), and the guest resumes
    /// with the signature. One verify ask and one sign ask at most, in that order; the final
    /// reply must pass `accept` (it is what was signed). Anything else, or a refusal by `sign`
    /// as a violation, drops the instance and answers [`CallError::Violation`].
    pub fn call_signing(
        &self,
        request: &[u8],
        wait: Duration,
        sign: &mut SignFn<'_>,
        accept: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Vec<u8>, CallError> {
        let mut w = self.acquire(wait)?;
        let out = converse(&mut w, request, sign).map(|r| {
            r.and_then(|out| match accept(&out) {
                Ok(()) => Ok(out),
                Err(m) => Err(CallError::Violation(m)),
            })
        });
        match out {
            Ok(Ok(out)) => {
                self.release(w);
                Ok(out)
            }
            Ok(Err(CallError::Violation(m))) => {
                drop(w);
                self.violations.fetch_add(1, Ordering::Relaxed);
                self.discard();
                Err(CallError::Violation(m))
            }
            Ok(Err(e)) => {
                self.release(w);
                Err(e)
            }
            Err(e) => {
                // The guest heap may be broken after a trap: never reuse this instance.
                drop(w);
                self.discard();
                Err(CallError::Trap(format!("{e:#}")))
            }
        }
    }
}

/// One call and the asks it makes: a verify ask first (at most one), then a sign ask (at most
/// one). The outer error is a trap; the inner one a refusal of what the guest said.
fn converse(
    w: &mut Worker,
    request: &[u8],
    sign: &mut SignFn<'_>,
) -> Result<Result<Vec<u8>, CallError>> {
    let mut out = w.call(request)?;
    let mut verified: Option<SignatureCheck> = None;
    let (mut asked_verify, mut asked_sign) = (false, false);
    loop {
        if let Some(ask) = VerifyAsk::from_reply(&out) {
            if asked_verify || asked_sign {
                return Ok(Err(CallError::Violation("a second ask in one call".into())));
            }
            asked_verify = true;
            let check = match ask {
                Ok(c) => c,
                Err(e) => return Ok(Err(CallError::BadReply(e.to_string()))),
            };
            let valid = verify(&check);
            if valid {
                verified = Some(check);
            }
            out = w.call(&protocol::encode_request(&Request::Verified(Verdict {
                valid,
            }))?)?;
            continue;
        }
        if let Some(ask) = SignAsk::from_reply(&out) {
            if asked_sign {
                return Ok(Err(CallError::Violation(
                    "a second sign ask in one call".into(),
                )));
            }
            asked_sign = true;
            let ask = match ask {
                Ok(a) => a,
                Err(e) => return Ok(Err(CallError::Violation(e.to_string()))),
            };
            let signature = match sign(&ask, verified.as_ref()) {
                Ok(s) => s,
                Err(Refusal::Violation(m)) => return Ok(Err(CallError::Violation(m))),
                Err(Refusal::KeyStore(m)) => return Ok(Err(CallError::KeyStore(m))),
            };
            let resume = Request::Signature(SignatureReply { signature });
            out = w.call(&protocol::encode_request(&resume)?)?;
            continue;
        }
        return Ok(Ok(out));
    }
}

/// Compile the module, or load it from a cache file keyed by module hash and wasmtime version.
fn load_module(engine: &Engine, bytes: &[u8], sha: &str, cache_dir: &Path) -> Result<Module> {
    let key = format!("{sha}-wasmtime-{}.cwasm", env!("WASMTIME_VERSION"));
    let path: PathBuf = cache_dir.join(key);
    if path.exists() {
        if let Ok(m) = cache::deserialize(engine, &path) {
            return Ok(m);
        }
    }
    let module = Module::new(engine, bytes)?;
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let _ = crate::files::write_atomic(&path, &module.serialize()?, 0o600);
    }
    Ok(module)
}
