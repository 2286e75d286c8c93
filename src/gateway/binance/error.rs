//! [`GatewayError`]: why setting up the gateway or one of its queries (clock sync,
//! reconciliation, balances) failed.
//!
//! Orders never fail with an error: their failures reach the core as `Rejected`
//! reports with the venue's code (see [`super::orders`]). None of these errors
//! contains a key or a signature: every venue text in them is redacted first.

use thiserror::Error;

use super::config::BinanceConfigError;
use super::filters::FilterError;
use super::rest::CODE_TOO_MANY_REQUESTS;
use crate::feed::ws::WsError;
use crate::gateway::limits::Limit;
use crate::gateway::sign::CredentialsError;
use crate::gateway::VenueError;
use crate::types::Ts;

/// Errors setting up or querying the gateway. None contains a key or secret.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// Credentials could not be read.
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),
    /// A configuration value is invalid. The error is the whole story (it names the
    /// key and what is wrong), so it is shown in the message, not chained as a source.
    #[error("config {0}")]
    Config(BinanceConfigError),
    /// The user data stream client could not be set up for `ws_url` (TLS
    /// configuration, URL); the cause is the source.
    #[error("config gateway.binance.ws_url")]
    Stream(#[source] WsError),
    /// The user data stream's poller could not be created; the cause is the source.
    #[error("mio")]
    Poll(#[source] std::io::Error),
    /// An instrument symbol has no known quote asset.
    #[error("symbol {0}: cannot split into base and quote asset")]
    Symbol(String),
    /// The venue answered with an error.
    #[error("{path}: HTTP {status}, code {code}: {msg}")]
    Api {
        /// Endpoint.
        path: &'static str,
        /// HTTP status.
        status: u16,
        /// Venue code.
        code: i32,
        /// Venue message.
        msg: String,
    },
    /// No answer (transport failure or timeout).
    #[error("{path}: {msg}")]
    Transport {
        /// Endpoint.
        path: &'static str,
        /// What failed.
        msg: String,
    },
    /// Refused by the rate limiter before sending.
    #[error("{path}: rate limited ({limit:?}) until {retry_at}")]
    Limited {
        /// Endpoint.
        path: &'static str,
        /// Limit.
        limit: Limit,
        /// Earliest retry time (wall ns).
        retry_at: Ts,
    },
    /// Not sent: refused by the rate limiter or a server back-off, or the connection
    /// could not be made.
    #[error("{path}: not sent, code {code}: {msg}")]
    NotSent {
        /// Endpoint.
        path: &'static str,
        /// [`CODE_TOO_MANY_REQUESTS`] or [`CODE_NOT_SENT`](super::rest::CODE_NOT_SENT).
        code: i32,
        /// Why.
        msg: String,
    },
    /// An answer that could not be understood.
    #[error("{path}: bad answer: {msg}")]
    Parse {
        /// Endpoint.
        path: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The venue's `serverTime` is too far from the local clock (the offset is kept).
    #[error("{path}: serverTime {server_ms} is {skew_ms} ms from the local clock (more than {max_ms} ms): refused")]
    ClockSkew {
        /// Endpoint.
        path: &'static str,
        /// The venue's time, ms.
        server_ms: i64,
        /// `serverTime` minus the local midpoint of the round trip, ms (saturated).
        skew_ms: i64,
        /// The bound, ms (`max_clock_skew_ms`).
        max_ms: u64,
    },
    /// The venue holds an open order of this very session: ids would collide.
    #[error("the venue holds open order {0} of this session id: restart in a later second")]
    SessionCollision(String),
    /// At start, an instrument's `tick` or `lot` is not the venue's, or its filters
    /// could not be read ([`super::filters`]).
    /// Boxed: the variant would double the size of every gateway result.
    #[error(transparent)]
    Filters(Box<FilterError>),
}

impl From<FilterError> for GatewayError {
    fn from(e: FilterError) -> Self {
        GatewayError::Filters(Box::new(e))
    }
}

impl From<BinanceConfigError> for GatewayError {
    fn from(e: BinanceConfigError) -> Self {
        GatewayError::Config(e)
    }
}

impl From<GatewayError> for VenueError {
    fn from(e: GatewayError) -> Self {
        let code = match &e {
            GatewayError::Api { code, .. } | GatewayError::NotSent { code, .. } => *code,
            GatewayError::Limited { .. } => CODE_TOO_MANY_REQUESTS,
            _ => 0,
        };
        VenueError { code, msg: e.to_string() }
    }
}
