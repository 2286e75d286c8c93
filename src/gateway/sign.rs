//! API credentials and Binance request signing (HMAC-SHA256).
//!
//! Binance Spot `SIGNED` requests carry a `signature` parameter: the lowercase hex
//! HMAC-SHA256 of the *signature payload* keyed with the account's secret key.
//!
//! - REST: the payload is the query string concatenated, without separator, with the
//!   request body, exactly as sent; non-ASCII characters must be percent-encoded first
//!   (Binance Spot REST API, "SIGNED Endpoint Examples for POST /api/v3/order", HMAC
//!   keys). The documented example signs
//!   `symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559`
//!   with secret `NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j` to
//!   `c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71` (unit test below).
//! - WebSocket API: the payload is every request parameter except `signature`, sorted by
//!   name, formatted as `name=value` pairs joined by `&` ([`ws_payload`]).
//!
//! Secrets: [`Credentials`] are read only from environment variables whose *names* come
//! from the configuration. The secret is kept only as a keyed HMAC state (the raw string
//! is dropped after keying), `Debug` prints `<redacted>` for both key and secret, and no
//! error of this module contains either.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Errors reading credentials. They name the environment variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialsError {
    /// The variable is not set, is empty, or is not valid Unicode.
    #[error("environment variable {0} is not set or empty")]
    Missing(String),
    /// The configuration names no variable.
    #[error("no environment variable configured for the {0}")]
    NotConfigured(&'static str),
}

/// An API key and its secret. `Debug` redacts both; the secret exists only inside the
/// keyed HMAC state.
#[derive(Clone)]
pub struct Credentials {
    key: String,
    mac: HmacSha256,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("key", &"<redacted>").field("secret", &"<redacted>").finish()
    }
}

impl Credentials {
    /// Credentials from a key and a secret (tests, the mock server).
    pub fn new(key: impl Into<String>, secret: &str) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        Credentials { key: key.into(), mac }
    }

    /// Reads the key and the secret from the environment variables named `key_env` and
    /// `secret_env`.
    pub fn from_env(key_env: &str, secret_env: &str) -> Result<Self, CredentialsError> {
        if key_env.is_empty() {
            return Err(CredentialsError::NotConfigured("API key"));
        }
        if secret_env.is_empty() {
            return Err(CredentialsError::NotConfigured("API secret"));
        }
        let read = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(CredentialsError::Missing(name.to_string())),
        };
        let key = read(key_env)?;
        let secret = read(secret_env)?;
        Ok(Credentials::new(key, &secret))
    }

    /// The API key, for the `X-MBX-APIKEY` header or the WebSocket `apiKey` parameter.
    /// Never log it.
    pub fn api_key(&self) -> &str {
        &self.key
    }

    /// `text` from a venue (an error message, a reason, a transport error, an answer
    /// quoted in a parse error) with every secret the venue could echo replaced by
    /// [`REDACTED`]: the API key wherever it appears, the value after every
    /// `signature`, `apiKey` or `listenKey` name (`name=value`, `"name":"value"`,
    /// `name: value`), and every run of exactly 64 hex digits (an HMAC-SHA256 signature
    /// echoed without its name). The secret itself is never sent, so no venue can echo
    /// it. Call it before a venue text is logged, stored in a report or returned in an
    /// error.
    pub fn redact(&self, text: &str) -> String {
        let mut out = if self.key.is_empty() { text.to_string() } else { text.replace(&self.key, REDACTED) };
        for name in ["signature", "apiKey", "listenKey"] {
            out = redact_named(&out, name);
        }
        redact_hex64(&out)
    }

    /// Lowercase hex HMAC-SHA256 of `payload` with the secret.
    pub fn sign(&self, payload: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(payload);
        hex(&mac.finalize().into_bytes())
    }

    /// True if `signature` (hex, either case, as Binance accepts for HMAC) is the
    /// signature of `payload`. Constant-time in the digest comparison.
    pub fn verify(&self, payload: &[u8], signature: &str) -> bool {
        let Some(bytes) = unhex(signature) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_slice(&bytes).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

/// True for the bytes sent as they are in a query string (RFC 3986 unreserved).
#[inline]
fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~')
}

/// What [`Credentials::redact`] puts in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// True for the bytes a secret value is made of (key, signature, listen key, and their
/// percent-encodings).
fn secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.%+/=".contains(&b)
}

/// Replaces the value after each occurrence of `name` (ASCII case-blind) followed by a
/// separator run holding `=` or `:` (with quotes and spaces), e.g. `name=v`,
/// `"name":"v"`, `name: v`.
fn redact_named(text: &str, name: &str) -> String {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let needle = name.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = lower[from..].find(&needle) {
        let mut i = from + at + needle.len();
        let sep_start = i;
        while i < bytes.len() && i - sep_start < 4 && b"\"' =:".contains(&bytes[i]) {
            i += 1;
        }
        let has_sep = bytes[sep_start..i].iter().any(|&b| b == b'=' || b == b':');
        let val_start = i;
        while i < bytes.len() && secret_byte(bytes[i]) && bytes[i] != b'=' {
            i += 1;
        }
        if has_sep && i > val_start {
            out.push_str(&text[copied..val_start]);
            out.push_str(REDACTED);
            copied = i;
        }
        from = i.max(from + at + needle.len());
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces every maximal run of exactly 64 hex digits.
fn redact_hex64(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_hexdigit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        let bounded = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let ends = i == bytes.len() || !bytes[i].is_ascii_alphanumeric();
        if i - start == 64 && bounded && ends {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = i;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Appends `value` percent-encoded (every byte but the RFC 3986 unreserved ones, so
/// non-ASCII characters become `%XX` of their UTF-8 bytes, as Binance requires).
pub fn push_encoded(out: &mut String, value: &str) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &c in value.as_bytes() {
        if unreserved(c) {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(DIGITS[(c >> 4) as usize] as char);
            out.push(DIGITS[(c & 15) as usize] as char);
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space, as form bodies use); `None` for a bad
/// escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                let v = unhex(std::str::from_utf8(h).ok()?)?;
                out.push(v[0]);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A query string built in order, `name=value` pairs joined by `&`, values
/// percent-encoded. The string built is exactly the one sent and signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(String);

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Query(String::with_capacity(256))
    }

    /// Appends `name=value` (names are ASCII identifiers and are not encoded).
    pub fn push(&mut self, name: &str, value: impl fmt::Display) -> &mut Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(name);
        self.0.push('=');
        let v = value.to_string();
        push_encoded(&mut self.0, &v);
        self
    }

    /// The query string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends `&signature=<hex>` over the query as it stands (REST: the body is empty,
    /// every parameter is in the query string) and returns the signed query.
    pub fn signed(mut self, creds: &Credentials) -> String {
        let sig = creds.sign(self.0.as_bytes());
        self.push("signature", sig);
        self.0
    }
}

/// The WebSocket API signature payload: `params` (without `signature`) sorted by name,
/// `name=value` joined by `&`. Values are used as they are (they are ASCII here).
pub fn ws_payload(params: &[(&str, String)]) -> String {
    let mut p: Vec<&(&str, String)> = params.iter().filter(|(k, _)| *k != "signature").collect();
    p.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = String::with_capacity(128);
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_what_a_venue_can_echo() {
        let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
        let c = Credentials::new(key, "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j");
        let sig = c.sign(b"symbol=BTCUSDT");
        let text = format!(
            "bad request GET /api/v3/order?symbol=BTCUSDT&timestamp=1&signature={sig} X-MBX-APIKEY: {key} \
             {{\"apiKey\":\"{key}\",\"listenKey\":\"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1\"}} bare {sig}."
        );
        let r = c.redact(&text);
        assert!(!r.contains(key) && !r.contains(&sig) && !r.contains("pqia91ma"), "{r}");
        assert!(r.contains("signature=<redacted>") && r.ends_with("bare <redacted>."), "{r}");
        // Ordinary venue texts pass unchanged.
        for t in
            ["Signature for this request is not valid.", "Timestamp for this request is outside of the recvWindow."]
        {
            assert_eq!(c.redact(t), t);
        }
        assert_eq!(Credentials::new("", "s").redact("x"), "x");
    }

    const DOC_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    /// Binance Spot REST API docs, "SIGNED Endpoint Examples for POST /api/v3/order",
    /// HMAC keys: both published examples (ASCII, and a non-ASCII symbol that must be
    /// percent-encoded before signing).
    #[test]
    fn documented_hmac_examples() {
        let c = Credentials::new(DOC_KEY, DOC_SECRET);
        let mut q = Query::new();
        q.push("symbol", "LTCBTC")
            .push("side", "BUY")
            .push("type", "LIMIT")
            .push("timeInForce", "GTC")
            .push("quantity", 1)
            .push("price", "0.1")
            .push("recvWindow", 5000)
            .push("timestamp", 1_499_827_319_559i64);
        assert_eq!(
            q.as_str(),
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        );
        assert_eq!(c.sign(q.as_str().as_bytes()), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
        let signed = q.signed(&c);
        assert!(signed.ends_with("&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"));

        let mut q = Query::new();
        q.push("symbol", "１２３４５６")
            .push("side", "BUY")
            .push("type", "LIMIT")
            .push("timeInForce", "GTC")
            .push("quantity", 1)
            .push("price", "0.1")
            .push("recvWindow", 5000)
            .push("timestamp", 1_499_827_319_559i64);
        assert!(q.as_str().starts_with("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY"));
        assert_eq!(c.sign(q.as_str().as_bytes()), "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3");
    }

    #[test]
    fn verify_is_case_blind_and_strict() {
        let c = Credentials::new(DOC_KEY, DOC_SECRET);
        let p = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        assert!(c.verify(p, sig));
        assert!(c.verify(p, &sig.to_ascii_uppercase()));
        assert!(!c.verify(p, &sig[..62]));
        assert!(!c.verify(b"symbol=LTCBTC", sig));
        assert!(!c.verify(p, "zz"));
        assert!(!Credentials::new(DOC_KEY, "other").verify(p, sig));
    }

    #[test]
    fn ws_payload_sorts_and_skips_signature() {
        let p = [
            ("timestamp", "1".to_string()),
            ("apiKey", "k".to_string()),
            ("signature", "x".to_string()),
            ("recvWindow", "5000".to_string()),
        ];
        assert_eq!(ws_payload(&p), "apiKey=k&recvWindow=5000&timestamp=1");
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let c = Credentials::new(DOC_KEY, DOC_SECRET);
        let d = format!("{c:?} {c:#?}");
        assert!(!d.contains(DOC_KEY) && !d.contains(DOC_SECRET), "{d}");
        assert!(d.contains("<redacted>"));
        let e = Credentials::from_env("STATARB_TEST_UNSET_KEY_VAR", "STATARB_TEST_UNSET_SECRET_VAR").unwrap_err();
        assert_eq!(e, CredentialsError::Missing("STATARB_TEST_UNSET_KEY_VAR".into()));
        assert!(Credentials::from_env("", "X").is_err());
    }

    #[test]
    fn percent_roundtrip() {
        let mut s = String::new();
        push_encoded(&mut s, "a b/c:１");
        assert_eq!(s, "a%20b%2Fc%3A%EF%BC%91");
        assert_eq!(percent_decode(&s).as_deref(), Some("a b/c:１"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
