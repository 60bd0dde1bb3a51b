//! The connection (one server or a cluster) and the script call: EVALSHA, falling back
//! to EVAL (which also caches the script) when the server answers NOSCRIPT, as it does
//! after a restart or a failover to a node that has not seen the script yet.

use std::fmt::Write as _;
use std::sync::LazyLock;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};

use super::SCRIPT;

/// SHA-1 of [`SCRIPT`], the name EVALSHA calls it by.
pub(super) static SCRIPT_SHA: LazyLock<String> =
    LazyLock::new(|| ::redis::Script::new(SCRIPT).get_hash().to_owned());

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
