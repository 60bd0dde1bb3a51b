//! Building a [`RedisStore`]: key prefix, timeout, failure policy, deny cache, and the
//! connection (one server or a cluster).

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;

use super::RedisStore;
use super::conn::Connection;
use super::key_name::{DEFAULT_SECRET, KeyNames, MIN_SECRET_LEN};
use crate::store::Tiers;

/// What a check does when Redis does not answer within the timeout, or fails.
///
/// Whatever the policy, a check never waits longer than the store's timeout
/// ([`RedisStoreBuilder::timeout`]), never panics, and the next checks go to Redis again,
/// so the store recovers by itself when Redis returns. Every failure emits a `tracing`
/// warning (at most one per second per store, so an outage does not flood the logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit the request. Its outcome reports a fresh state (the whole burst minus the
    /// request), since the real one is unknown. The default: an outage of the limiter
    /// does not become an outage of the service.
    #[default]
    FailOpen,
    /// Refuse to decide: the check returns the error ([`StoreError::Timeout`] or
    /// [`StoreError::Unavailable`]), which the middleware answers with 503 Service
    /// Unavailable and `Retry-After: 1`, without calling the service.
    ///
    /// [`StoreError::Timeout`]: crate::StoreError::Timeout
    /// [`StoreError::Unavailable`]: crate::StoreError::Unavailable
    FailClosed,
    /// Decide locally with an in-process [`MemoryStore`](crate::store::memory::MemoryStore)
    /// of the same quotas, per process: during the outage each replica enforces the
    /// limits on its own (so N replicas admit up to N times the limit between them).
    FallbackLocal,
}

/// Why a [`RedisStore`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The key prefix contains `{` or `}`, which would break the hash tag that keeps a
    /// decision's keys in one Redis Cluster slot.
    InvalidPrefix(String),
    /// The timeout was zero.
    ZeroTimeout,
    /// The key-name secret ([`RedisStoreBuilder::key_secret`]) is shorter than 16 bytes.
    ShortKeySecret {
        /// Its length in bytes.
        len: usize,
    },
    /// No cluster node URL was given.
    NoNodes,
    /// A lazy connection needs to be created inside a Tokio runtime.
    NoRuntime,
    /// The URL is invalid, or Redis could not be reached or refused the script.
    Redis(::redis::RedisError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrefix(p) => write!(
                f,
                "Redis key prefix {p:?} must not contain '{{' or '}}' (keys carry their own hash tag)"
            ),
            Self::ZeroTimeout => f.write_str("the Redis store's timeout must be longer than zero"),
            Self::ShortKeySecret { len } => write!(
                f,
                "the Redis key-name secret has {len} bytes; it needs at least {MIN_SECRET_LEN} (128 bits)"
            ),
            Self::NoNodes => f.write_str("a Redis Cluster store needs at least one node URL"),
            Self::NoRuntime => {
                f.write_str("a lazy Redis store must be created inside a Tokio runtime")
            }
            Self::Redis(e) => write!(f, "cannot set up the Redis store: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<::redis::RedisError> for ConnectError {
    fn from(e: ::redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// Configures and connects a [`RedisStore`]; start with [`RedisStore::builder`].
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    pub(super) tiers: Tiers,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) policy: FailurePolicy,
    pub(super) deny_cache: usize,
    pub(super) breaker_after: u32,
    pub(super) key_names: KeyNames,
    /// Whether `key_secret` was called (else the public default secret is in use).
    pub(super) secret_len: Option<usize>,
    pub(super) raw_key_names: bool,
}

/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "rl:";
/// Default bound of the deny cache, in keys.
pub const DEFAULT_DENY_CACHE: usize = 10_000;
/// Default number of failures in a row that open the breaker.
pub const DEFAULT_BREAKER_AFTER: u32 = 3;

impl RedisStoreBuilder {
    pub(super) fn new(tiers: Tiers) -> Self {
        RedisStoreBuilder {
            tiers,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            policy: FailurePolicy::default(),
            deny_cache: DEFAULT_DENY_CACHE,
            breaker_after: DEFAULT_BREAKER_AFTER,
            key_names: KeyNames::hashed(DEFAULT_SECRET),
            secret_len: None,
            raw_key_names: false,
        }
    }

    /// The secret of the keyed hash that turns client keys into Redis key names; give
    /// every replica that shares the limit the same one (at least 16 random bytes, e.g.
    /// from an environment variable or a secret store; longer input is hashed down to
    /// SipHash's 128-bit key).
    ///
    /// Redis key names never hold client keys (API tokens, IP addresses): quota `i` of a
    /// key lives at `{prefix}{tier:H}:i`, where `H` is SipHash-2-4 (128-bit output, 32 hex
    /// digits) of the key under this secret. So `SCAN`, `MONITOR`, `SLOWLOG`, RDB/AOF
    /// files and replicas show only `H`.
    ///
    /// **Without a secret**, a fixed, public default secret is used, so replicas share
    /// limits with no configuration, but the names are only *pseudonymous*: anyone who
    /// reads them and can guess candidate keys can test the guesses offline. Keys from a
    /// small space, such as IPv4 addresses (2^32), are recovered that way in minutes;
    /// high-entropy keys such as random API tokens are not. With a secret, guessing needs
    /// the secret too: names reveal keys only if the secret leaks. The store logs one
    /// warning when it is built without a secret.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_ratelimit::{Quotas, store::redis::RedisStore};
    /// let secret = std::env::var("RATE_LIMIT_KEY_SECRET")?;
    /// let store = RedisStore::builder(Quotas::claid())
    ///     .key_secret(secret)
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn key_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        self.key_names = KeyNames::hashed(secret);
        self.secret_len = Some(secret.len());
        self
    }

    /// **Debugging only**: write client keys into Redis key names as they are
    /// (`{prefix}{tier:key}:i`), instead of their keyed hash. Off by default; never turn
    /// it on where keys are credentials or personal data.
    pub fn raw_key_names(mut self, raw: bool) -> Self {
        self.raw_key_names = raw;
        self
    }

    /// How the store names keys: the hash, unless raw names were asked for.
    pub(super) fn names(&self) -> KeyNames {
        if self.raw_key_names {
            KeyNames::Raw
        } else {
            self.key_names.clone()
        }
    }

    /// Prefix of every key the store writes (default `"rl:"`). Give each service or
    /// limit its own prefix when they share a Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Longest time a check waits for Redis (default 100 ms), connecting included;
    /// then the [`FailurePolicy`] decides.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis fails or is too slow (default [`FailurePolicy::FailOpen`]).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound, in keys, of the local cache of keys already denied (default 10 000; `0`
    /// turns it off). While a key is cached, its repeated requests are denied without a
    /// round trip until they could be admitted again (see [`RedisStore`]).
    pub fn deny_cache(mut self, max_keys: usize) -> Self {
        self.deny_cache = max_keys;
        self
    }

    /// Failures (errors or timeouts) in a row after which the store stops asking Redis
    /// (default 3; `0` never stops): checks are then answered by the [`FailurePolicy`] at
    /// once, without waiting the timeout, while one background `PING` at a time (every
    /// 250 ms, backing off to 2 s) asks whether Redis is back. The first answer closes
    /// the breaker. An outage then costs a request nothing but the policy's answer.
    pub fn breaker(mut self, failures_in_a_row: u32) -> Self {
        self.breaker_after = failures_in_a_row;
        self
    }

    fn validate(&self) -> Result<(), ConnectError> {
        if self.prefix.contains(['{', '}']) {
            return Err(ConnectError::InvalidPrefix(self.prefix.clone()));
        }
        if self.timeout.is_zero() {
            return Err(ConnectError::ZeroTimeout);
        }
        if let Some(len) = self.secret_len
            && len < MIN_SECRET_LEN
        {
            return Err(ConnectError::ShortKeySecret { len });
        }
        match (self.names(), self.secret_len) {
            (KeyNames::Raw, _) => tracing::warn!(
                target: "tower_ratelimit",
                "Redis store writes raw client keys into key names (raw_key_names): debugging only"
            ),
            (KeyNames::Hashed { .. }, None) => tracing::warn!(
                target: "tower_ratelimit",
                "Redis store has no key_secret: key names are hashed with the public default \
                 secret, so low-entropy keys (IP addresses) can be recovered from them offline; \
                 set RedisStoreBuilder::key_secret on every replica"
            ),
            (KeyNames::Hashed { .. }, Some(_)) => {}
        }
        Ok(())
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            // The store bounds every call itself; a second timer per command would only
            // cost time (a timed-out command does not make the connection reconnect).
            .set_response_timeout(None)
            // A connection attempt may take longer than one check: it goes on in the
            // background while checks time out and apply the policy.
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500))
    }

    /// Connects to one Redis server (a `redis://` or `rediss://` URL) with a multiplexed,
    /// automatically reconnecting connection, and loads the script. Fails if Redis cannot
    /// be reached now; see [`connect_lazy`](Self::connect_lazy) to start without it.
    pub async fn connect(self, url: &str) -> Result<RedisStore, ConnectError> {
        self.validate()?;
        let client = ::redis::Client::open(url)?;
        let config = self.manager_config();
        let manager = ConnectionManager::new_with_config(client.clone(), config.clone());
        let manager = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), manager)
            .await
            .map_err(|_| ConnectError::Redis(timeout_error()))??;
        let conn = Connection::single(manager, client, config);
        conn.load_script().await?;
        Ok(RedisStore::from_parts(self, conn))
    }

    /// Like [`connect`](Self::connect), but returns at once and connects on first use,
    /// so a service can start while Redis is down (its checks follow the failure policy
    /// until Redis is up). Must be called inside a Tokio runtime.
    pub fn connect_lazy(self, url: &str) -> Result<RedisStore, ConnectError> {
        self.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectError::NoRuntime);
        }
        let client = ::redis::Client::open(url)?;
        let config = self.manager_config();
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(RedisStore::from_parts(
            self,
            Connection::single(manager, client, config),
        ))
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port` URLs).
    /// Every decision's keys share one hash tag, so each check is one script call on the
    /// node owning that slot; redirections and failovers are followed by the client.
    pub async fn connect_cluster<I, S>(self, nodes: I) -> Result<RedisStore, ConnectError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.validate()?;
        let nodes: Vec<String> = nodes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if nodes.is_empty() {
            return Err(ConnectError::NoNodes);
        }
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(self.timeout.max(Duration::from_millis(500)))
            .response_timeout(self.timeout)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?;
        let conn = tokio::time::timeout(
            self.timeout.max(Duration::from_secs(2)),
            client.get_async_connection(),
        )
        .await
        .map_err(|_| ConnectError::Redis(timeout_error()))??;
        Ok(RedisStore::from_parts(self, Connection::cluster(conn)))
    }
}

fn timeout_error() -> ::redis::RedisError {
    ::redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "timed out connecting to Redis",
    ))
}
