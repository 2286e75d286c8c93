//! API credentials and Binance request signing (HMAC-SHA256 and Ed25519).
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
//! - Ed25519 ([`Ed25519Key`], WebSocket API and `session.logon`): the same payload,
//!   signed with the account's Ed25519 private key (PKCS#8, PEM, as Binance users hold
//!   it), the 64-byte signature sent base64-encoded (Binance WebSocket API docs,
//!   "SIGNED Request Example (Ed25519)"). Ed25519 is deterministic (RFC 8032), so a
//!   published key and signature are reproduced byte for byte (unit tests below).
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
    /// The variable (named) does not hold an Ed25519 private key in PKCS#8 PEM form (or
    /// the path of a file that does). The reason never quotes the key material.
    #[error("environment variable {0}: not an Ed25519 PKCS#8 PEM private key ({1})")]
    BadPrivateKey(String, &'static str),
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

/// An Ed25519 API key: the API key string and its private key. `Debug` redacts both;
/// the private key exists only inside ring's key pair.
pub struct Ed25519Key {
    key: String,
    pair: ring::signature::Ed25519KeyPair,
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key").field("key", &"<redacted>").field("private_key", &"<redacted>").finish()
    }
}

impl Ed25519Key {
    /// The key from its API key and a PEM `-----BEGIN PRIVATE KEY-----` block (PKCS#8 v1,
    /// as `openssl genpkey -algorithm ed25519` writes and Binance's docs show, or v2 with
    /// the public key). `source` names where the PEM came from, for the error.
    pub fn from_pem(api_key: impl Into<String>, pem: &str, source: &str) -> Result<Self, CredentialsError> {
        let bad = |why| CredentialsError::BadPrivateKey(source.to_string(), why);
        let begin = "-----BEGIN PRIVATE KEY-----";
        let end = "-----END PRIVATE KEY-----";
        let start = pem.find(begin).ok_or_else(|| bad("no BEGIN PRIVATE KEY line"))? + begin.len();
        let stop = pem[start..].find(end).ok_or_else(|| bad("no END PRIVATE KEY line"))? + start;
        let b64: Vec<u8> = pem[start..stop].bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let der = data_encoding::BASE64.decode(&b64).map_err(|_| bad("bad base64"))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|_| bad("not an Ed25519 PKCS#8 key"))?;
        Ok(Ed25519Key { key: api_key.into(), pair })
    }

    /// Reads the API key from `key_env` and the private key from `pem_env`: the variable
    /// holds either the PEM text itself or the path of the PEM file.
    pub fn from_env(key_env: &str, pem_env: &str) -> Result<Self, CredentialsError> {
        if key_env.is_empty() {
            return Err(CredentialsError::NotConfigured("API key"));
        }
        if pem_env.is_empty() {
            return Err(CredentialsError::NotConfigured("Ed25519 private key"));
        }
        let read = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(CredentialsError::Missing(name.to_string())),
        };
        let key = read(key_env)?;
        let value = read(pem_env)?;
        let pem = if value.contains("-----BEGIN") {
            value
        } else {
            std::fs::read_to_string(&value)
                .map_err(|_| CredentialsError::BadPrivateKey(pem_env.to_string(), "the file it names cannot be read"))?
        };
        Ed25519Key::from_pem(key, &pem, pem_env)
    }

    /// The API key, for the `apiKey` parameter. Never log it.
    pub fn api_key(&self) -> &str {
        &self.key
    }

    /// The 32-byte public key (what the venue registers; the mock verifies with it).
    pub fn public_key(&self) -> [u8; 32] {
        use ring::signature::KeyPair;
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Standard base64 (with padding) of the Ed25519 signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        data_encoding::BASE64.encode(self.pair.sign(payload).as_ref())
    }
}

/// True if `signature` (standard base64, case-sensitive) is a valid Ed25519 signature of
/// `payload` under the 32-byte `public_key` (the mock venue's check).
pub fn ed25519_verify(public_key: &[u8; 32], payload: &[u8], signature: &str) -> bool {
    let Ok(sig) = data_encoding::BASE64.decode(signature.as_bytes()) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key).verify(payload, &sig).is_ok()
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

    /// Binance WebSocket API docs, "SIGNED request example (HMAC)": both payloads (the
    /// sorted parameters; the non-ASCII symbol is signed as raw UTF-8, not
    /// percent-encoded) and their signatures.
    #[test]
    fn documented_ws_hmac_examples() {
        let c = Credentials::new(DOC_KEY, DOC_SECRET);
        let p = [
            ("symbol", "BTCUSDT".to_string()),
            ("side", "SELL".to_string()),
            ("type", "LIMIT".to_string()),
            ("timeInForce", "GTC".to_string()),
            ("quantity", "0.01000000".to_string()),
            ("price", "52000.00".to_string()),
            ("recvWindow", "100".to_string()),
            ("timestamp", "1645423376532".to_string()),
            ("apiKey", DOC_KEY.to_string()),
        ];
        let payload = ws_payload(&p);
        assert_eq!(
            payload,
            format!(
                "apiKey={DOC_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
            )
        );
        assert_eq!(c.sign(payload.as_bytes()), "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24");
        let p = [
            ("symbol", "１２３４５６".to_string()),
            ("side", "BUY".to_string()),
            ("type", "LIMIT".to_string()),
            ("timeInForce", "GTC".to_string()),
            ("quantity", "1.00000000".to_string()),
            ("price", "0.10000000".to_string()),
            ("recvWindow", "5000".to_string()),
            ("timestamp", "1645423376532".to_string()),
            ("apiKey", DOC_KEY.to_string()),
        ];
        assert_eq!(
            c.sign(ws_payload(&p).as_bytes()),
            "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"
        );
    }

    /// The Ed25519 private key Binance publishes in its FIX API docs ("Logon" signature
    /// example, marked illustrative only).
    const DOC_ED25519_PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n-----END PRIVATE KEY-----\n";

    /// Binance FIX API docs, Logon `RawData` example: the payload is MsgType,
    /// SenderCompID, TargetCompID, MsgSeqNum and SendingTime joined by SOH; the published
    /// signature is reproduced byte for byte. The WebSocket API docs' own Ed25519 example
    /// does not publish its private key, so its signatures cannot be reproduced; the
    /// second check signs that example's payload with the FIX key and compares with
    /// `openssl pkeyutl -sign -rawin` (OpenSSL 3) over the same bytes.
    #[test]
    fn documented_ed25519_examples() {
        let k = Ed25519Key::from_pem("k", DOC_ED25519_PEM, "TEST_PEM").unwrap();
        let fix = b"A\x01EXAMPLE\x01SPOT\x011\x0120240627-11:17:25.223";
        let sig = k.sign(fix);
        assert_eq!(sig, "4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3CvsRURC1oj73j8gCA==");
        assert!(ed25519_verify(&k.public_key(), fix, &sig));
        assert!(!ed25519_verify(&k.public_key(), b"A\x01EXAMPLE", &sig));
        assert!(!ed25519_verify(&k.public_key(), fix, "not base64"));

        let ws = "apiKey=4yNzx3yWC5bS6YTwEkSRaC0nRmSQIIStAUOh1b6kqaBrTLIhjCpI5lJH8q8R8WNO&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
        assert_eq!(
            k.sign(ws.as_bytes()),
            "82wlF5RobwT7JZehRQgOaupNEm5GrAqJj5tqZeCCE6ZxkhlUbWBThOx00q3FVnCKn882P+9p85phztjk4bOMAQ=="
        );
    }

    #[test]
    fn ed25519_bad_keys_name_the_source_not_the_key() {
        let cases = [
            "",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9\n-----END PRIVATE KEY-----",
        ];
        for pem in cases {
            let e = Ed25519Key::from_pem("k", pem, "MY_PEM_VAR").unwrap_err();
            let text = e.to_string();
            assert!(text.contains("MY_PEM_VAR") && !text.contains("MC4CAQAw"), "{text}");
        }
        let k = Ed25519Key::from_pem(DOC_KEY, DOC_ED25519_PEM, "TEST_PEM").unwrap();
        let d = format!("{k:?}");
        assert!(!d.contains(DOC_KEY) && !d.contains("MC4CAQAw"), "{d}");
        let e = Ed25519Key::from_env("STATARB_TEST_UNSET_KEY_VAR", "STATARB_TEST_UNSET_PEM_VAR").unwrap_err();
        assert_eq!(e, CredentialsError::Missing("STATARB_TEST_UNSET_KEY_VAR".into()));
        assert!(Ed25519Key::from_env("X", "").is_err());
    }
}
