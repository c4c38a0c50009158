//! The guest face of the module: three plain exports the wasmtime host drives. The protocol and
//! the request handling are the core's (`wasm_pki::protocol`); this file only moves bytes.
//!
//! Exports (wasm32): `wpki_buffer(len) -> ptr` sizes the request buffer and returns where the host
//! writes the request; `wpki_call(len) -> len` handles it and returns the response length;
//! `wpki_response() -> ptr` says where the response is. No `unsafe`: the guest only hands out
//! addresses of its own `Vec`s, and the host copies bytes while the guest is not running.

use std::cell::RefCell;

use wasm_pki::protocol::{Guest, MAX_REQUEST_BYTES};

thread_local! {
    static GUEST: RefCell<Guest> = RefCell::new(Guest::default());
    static REQUEST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RESPONSE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Handle one request (JSON) and return the reply (JSON). The module's test build also runs the
/// `spin` and `grow` hooks that prove the host's limits.
pub fn handle(request: &[u8]) -> Vec<u8> {
    #[cfg(feature = "test-hooks")]
    if let Ok(req) = wasm_pki::protocol::decode_request(request) {
        use wasm_pki::protocol::Request;
        return match req {
            Request::Spin => {
                let mut x: u64 = 1;
                loop {
                    x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            Request::Grow(g) => {
                let v = vec![1u8; g.bytes];
                wasm_pki::protocol::encode::<usize>(Ok(core::hint::black_box(v).len()))
            }
            other => lying::handle(other),
        };
    }
    GUEST.with(|g| g.borrow_mut().handle(request))
}

/// The test build's lying guest: once told how (`Request::Lie`), this instance hands the host's
/// key store what an honest guest never would.
#[cfg(feature = "test-hooks")]
mod lying {
    use std::cell::RefCell;

    use wasm_pki::protocol::{encode, LieRequest, Request, SignAsk, SignScheme};

    use super::GUEST;

    thread_local! {
        static LIE: RefCell<Option<LieRequest>> = const { RefCell::new(None) };
        static LAST_ASK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    fn honest(req: Request) -> Vec<u8> {
        GUEST.with(|g| g.borrow_mut().handle_request(req))
    }

    fn tbs(lie: &LieRequest) -> Option<Vec<u8>> {
        lie.tbs
            .as_deref()
            .map(|t| wasm_pki::unhex("tbs", t, 1 << 16).unwrap_or_default())
    }

    pub(super) fn handle(req: Request) -> Vec<u8> {
        if let Request::Lie(l) = req {
            LIE.with(|x| *x.borrow_mut() = Some(l));
            return encode::<()>(Ok(()));
        }
        let Some(lie) = LIE.with(|x| x.borrow().clone()) else {
            return honest(req);
        };
        let resuming = matches!(req, Request::Signature(_) | Request::Verified(_));
        if lie.ask_first && !resuming {
            let ask = SignAsk {
                scheme: lie.scheme.unwrap_or(SignScheme::EcdsaP256Sha256),
                tbs: tbs(&lie).unwrap_or_default(),
            };
            return ask.to_reply().unwrap_or_default();
        }
        if matches!(req, Request::Signature(_)) {
            if lie.ask_twice {
                return LAST_ASK.with(|a| a.borrow().clone());
            }
            if let Some(answer) = &lie.answer {
                honest(req);
                return answer.clone().into_bytes();
            }
        }
        let out = honest(req);
        match SignAsk::from_reply(&out) {
            Some(Ok(mut ask)) => {
                if let Some(t) = tbs(&lie) {
                    ask.tbs = t;
                }
                if let Some(s) = lie.scheme {
                    ask.scheme = s;
                }
                let bytes = ask.to_reply().unwrap_or_default();
                LAST_ASK.with(|a| *a.borrow_mut() = bytes.clone());
                bytes
            }
            _ => out,
        }
    }
}

/// Size the request buffer to `len` bytes and return its address (0 when too large).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_buffer(len: u32) -> u32 {
    let len = len as usize;
    if len > MAX_REQUEST_BYTES {
        return 0;
    }
    REQUEST.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.resize(len, 0);
        b.as_mut_ptr() as usize as u32
    })
}

/// Handle the `len` request bytes in the buffer; returns the response length.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_call(len: u32) -> u32 {
    let response = REQUEST.with(|b| {
        let b = b.borrow();
        handle(&b[..(len as usize).min(b.len())])
    });
    RESPONSE.with(|r| {
        let mut r = r.borrow_mut();
        *r = response;
        r.len() as u32
    })
}

/// Address of the last response.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_response() -> u32 {
    RESPONSE.with(|r| r.borrow().as_ptr() as usize as u32)
}

// Native builds (clippy, fuzzing) have no exports; keep the buffers' users honest there too.
#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
fn buffers_used_only_on_wasm32() -> usize {
    REQUEST.with(|b| b.borrow().len()) + RESPONSE.with(|r| r.borrow().len()) + MAX_REQUEST_BYTES
}
