//! The connection (one server or a cluster) and the script call: EVALSHA, falling back
//! to EVAL (which also caches the script) when the server answers NOSCRIPT, as it does
//! after a restart or a failover to a node that has not seen the script yet.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};

use super::SCRIPT;
use crate::interval_gate::IntervalGate;

/// SHA-1 of [`SCRIPT`], the name EVALSHA calls it by.
pub(super) static SCRIPT_SHA: LazyLock<String> =
    LazyLock::new(|| ::redis::Script::new(SCRIPT).get_hash().to_owned());

/// Timeouts in a row after which a single-server connection is replaced.
const RENEW_AFTER_TIMEOUTS: u32 = 3;

/// The store's connection, replaced when it falls silent.
///
/// A connection that stops answering without breaking (a network partition, a failover
/// behind a proxy, a half-open TCP connection) never reports an error, so the client
/// would never reconnect by itself: after a few timeouts in a row, a fresh connection
/// takes its place (at most once a second). Cluster connections manage their nodes'
/// connections themselves.
pub(super) struct Connection {
    current: arc_swap::ArcSwap<Conn>,
    renew: Option<(::redis::Client, ConnectionManagerConfig)>,
    timeouts_in_a_row: AtomicU32,
    /// Replacements happen at most once a second.
    renew_gate: IntervalGate,
}

impl Connection {
    pub(super) fn single(
        manager: ConnectionManager,
        client: ::redis::Client,
        config: ConnectionManagerConfig,
    ) -> Self {
        Self::new(Conn::Single(manager), Some((client, config)))
    }

    pub(super) fn cluster(conn: ClusterConnection) -> Self {
        Self::new(Conn::Cluster(conn), None)
    }

    fn new(conn: Conn, renew: Option<(::redis::Client, ConnectionManagerConfig)>) -> Self {
        Connection {
            current: arc_swap::ArcSwap::from_pointee(conn),
            renew,
            timeouts_in_a_row: AtomicU32::new(0),
            renew_gate: IntervalGate::per_second(),
        }
    }

    /// The connection to use now (a cheap handle).
    pub(super) fn get(&self) -> Conn {
        (**self.current.load()).clone()
    }

    /// Redis answered.
    pub(super) fn answered(&self) {
        if self.timeouts_in_a_row.load(Relaxed) != 0 {
            self.timeouts_in_a_row.store(0, Relaxed);
        }
    }

    /// A call timed out; replaces the connection after a few in a row.
    pub(super) fn timed_out(&self) {
        let n = self.timeouts_in_a_row.fetch_add(1, Relaxed) + 1;
        let Some((client, config)) = &self.renew else {
            return;
        };
        if n < RENEW_AFTER_TIMEOUTS {
            return;
        }
        if !self.renew_gate.open() {
            return;
        }
        // Lazy: connects on first use, in the background of the next checks.
        match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
            Ok(fresh) => {
                self.current.store(std::sync::Arc::new(Conn::Single(fresh)));
                self.timeouts_in_a_row.store(0, Relaxed);
                tracing::warn!(
                    target: "tower_ratelimit",
                    "rate-limit store: Redis connection silent; opened a new one"
                );
            }
            Err(e) => tracing::warn!(
                target: "tower_ratelimit",
                error = %e,
                "rate-limit store: cannot replace a silent Redis connection"
            ),
        }
    }

    /// Loads the script so that the first checks need no EVAL.
    pub(super) async fn load_script(&self) -> RedisResult<()> {
        self.get().load_script().await
    }
}

/// A multiplexed connection: concurrent checks share it and are pipelined.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// One script call: the keys' common stem and the arguments after the keys.
pub(super) struct Call<'a> {
    /// `prefix{tier:key}`; quota `i` lives at `stem:i`.
    pub(super) stem: &'a str,
    pub(super) quotas: usize,
    pub(super) cost: u32,
    /// Injected time in microseconds (tests only); `None` reads the server's TIME.
    pub(super) now_us: Option<u64>,
    /// `T_1, cap_1, T_2, cap_2, ...` in microseconds, already formatted.
    pub(super) params: &'a [String],
}

impl Call<'_> {
    fn command(&self, verb: &str, body: &str) -> Cmd {
        let mut cmd = ::redis::cmd(verb);
        cmd.arg(body).arg(self.quotas);
        let mut key = String::with_capacity(self.stem.len() + 2);
        for i in 0..self.quotas {
            key.clear();
            // Writing to a String cannot fail.
            let _ = write!(key, "{}:{i}", self.stem);
            cmd.arg(key.as_str());
        }
        cmd.arg(self.cost);
        match self.now_us {
            Some(us) => cmd.arg(us),
            None => cmd.arg(""),
        };
        for p in self.params {
            cmd.arg(p.as_str());
        }
        cmd
    }
}

async fn run<C: ConnectionLike>(con: &mut C, call: &Call<'_>) -> RedisResult<Value> {
    match call
        .command("EVALSHA", &SCRIPT_SHA)
        .query_async::<Value>(con)
        .await
    {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            call.command("EVAL", SCRIPT).query_async(con).await
        }
        other => other,
    }
}

impl Conn {
    /// Runs the script once (twice only right after the server lost its script cache).
    pub(super) async fn eval(&self, call: &Call<'_>) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => run(&mut c.clone(), call).await,
            Conn::Cluster(c) => run(&mut c.clone(), call).await,
        }
    }

    /// `PING`: is the server answering?
    pub(super) async fn ping(&self) -> RedisResult<()> {
        let cmd = ::redis::cmd("PING");
        match self {
            Conn::Single(c) => cmd.query_async::<String>(&mut c.clone()).await.map(drop),
            Conn::Cluster(c) => cmd.query_async::<String>(&mut c.clone()).await.map(drop),
        }
    }

    /// Loads the script so that the first checks need no EVAL.
    pub(super) async fn load_script(&self) -> RedisResult<()> {
        let mut cmd = ::redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(SCRIPT);
        match self {
            Conn::Single(c) => cmd.query_async::<String>(&mut c.clone()).await.map(drop),
            // Each node caches scripts on its own; NOSCRIPT fallbacks load it per node.
            Conn::Cluster(_) => Ok(()),
        }
    }
}
