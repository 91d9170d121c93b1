//! Bearer tokens: read from a token file, compared in constant time, and re-read when the file
//! changes, so they can be rotated without a restart or a mixed window. There are three files,
//! each its own credential: `--admin-token-file` (admin routes), `--peer-token-file` (traffic
//! between servers: forwarding headers, `/v1/internal`; defaults to the admin file) and
//! `--data-token-file` (data routes under `--require-token-for-data`; defaults to the admin
//! file). See [`Credentials`] for which routes take which.
//!
//! The file holds one token per line (blank lines and surrounding whitespace ignored). The first
//! line is the token this server *sends* to its peers; every line is *accepted*. A rotation is
//! then: add the next token as a second line, wait until every server accepts it, swap the two
//! lines (servers now send the next token, which all accept), drop the old line
//! (docs/security-token-rotation.md).
//!
//! The file is polled (its content, every [`RELOAD_EVERY`]) rather than watched with inotify: a
//! Kubernetes Secret volume is updated by renaming a new `..data` directory into place, which an
//! inotify watch on the file never sees, and the kubelet's own propagation delay (up to a minute)
//! dwarfs the poll interval. A read error or an empty file keeps the tokens in use, so a botched
//! edit locks nobody out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use parking_lot::RwLock;
use subtle::{Choice, ConstantTimeEq};
use tokio_util::sync::CancellationToken;

use crate::reload::Reread;

use crate::error::Error;

/// How often the token file is re-read.
pub use crate::reload::RELOAD_EVERY;

/// The tokens in force; cheap to clone (shared), so the router, the peer client and the reloader
/// all see the same tokens.
#[derive(Clone, Default)]
pub struct AdminToken(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Where the tokens come from; `None` when no token file was given.
    file: Option<PathBuf>,
    /// Which file this is, for messages ("admin token file").
    what: &'static str,
    tokens: RwLock<Tokens>,
}

/// The lines of a token file: the first is sent, all are accepted.
#[derive(Clone, Default, PartialEq, Eq)]
struct Tokens(Vec<Arc<str>>);

impl Tokens {
    fn parse(text: &str) -> Tokens {
        Tokens(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Arc::from)
                .collect(),
        )
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        write!(f, "AdminToken({} accepted)", self.0.tokens.read().0.len())
    }
}

/// What one [`AdminToken::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file holds the tokens already in force (or there is no file).
    Unchanged,
    /// New tokens are in force; this many are accepted.
    Changed { accepted: usize },
    /// The file could not be read or holds no token (why): the tokens in force are kept.
    Kept(String),
}

impl AdminToken {
    /// Tokens given directly, one per line as in the file; no file to reload.
    pub fn new(token: Option<String>) -> Self {
        let tokens = token.as_deref().map(Tokens::parse).unwrap_or_default();
        AdminToken(Arc::new(Shared {
            file: None,
            what: "admin token file",
            tokens: RwLock::new(tokens),
        }))
    }

    /// Reads the admin token file; it must hold at least one token.
    pub fn from_file(path: Option<&Path>) -> anyhow::Result<Self> {
        Self::from_named_file(path, "admin token file")
    }

    /// Reads a token file (`what` names it in messages); it must hold at least one token.
    pub fn from_named_file(path: Option<&Path>, what: &'static str) -> anyhow::Result<Self> {
        let Some(p) = path else {
            return Ok(AdminToken::default());
        };
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", p.display()))?;
        let tokens = Tokens::parse(&text);
        if tokens.0.is_empty() {
            anyhow::bail!("the {what} {} is empty", p.display());
        }
        Ok(AdminToken(Arc::new(Shared {
            file: Some(p.to_owned()),
            what,
            tokens: RwLock::new(tokens),
        })))
    }

    /// Whether both are the same shared tokens (one file, one reloader).
    pub fn same_as(&self, other: &AdminToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The token to send to peers (the file's first line), if one is configured.
    pub fn sending(&self) -> Option<Arc<str>> {
        self.0.tokens.read().0.first().cloned()
    }

    /// Whether the request carries `Authorization: Bearer <t>` for one of the accepted tokens.
    /// Every accepted token is compared, in constant time, whatever matched.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|g| !g.is_empty())
        else {
            return false;
        };
        let tokens = self.0.tokens.read();
        let matched = tokens.0.iter().fold(Choice::from(0), |acc, t| {
            acc | given.as_bytes().ct_eq(t.as_bytes())
        });
        bool::from(matched)
    }

    pub fn require(&self, headers: &HeaderMap) -> Result<(), Error> {
        if self.0.tokens.read().0.is_empty() {
            return Err(Error::Unauthorized(if self.0.what == "peer token file" {
                "no peer token is configured on this server (--peer-token-file or \
                 --admin-token-file)"
            } else {
                "no admin token is configured on this server (--admin-token-file)"
            }));
        }
        if self.authorizes(headers) {
            Ok(())
        } else {
            Err(Error::Unauthorized(
                "missing or wrong `Authorization: Bearer <token>`",
            ))
        }
    }

    /// Re-reads the token file once and puts its tokens in force if they changed.
    pub async fn reload(&self) -> Reload {
        let Some(path) = &self.0.file else {
            return Reload::Unchanged;
        };
        let tokens = match tokio::fs::read_to_string(path).await {
            Ok(text) => Tokens::parse(&text),
            Err(e) => return Reload::Kept(format!("cannot read it: {e}")),
        };
        if tokens.0.is_empty() {
            return Reload::Kept("it holds no token".to_owned());
        }
        let mut current = self.0.tokens.write();
        if *current == tokens {
            return Reload::Unchanged;
        }
        let accepted = tokens.0.len();
        *current = tokens;
        Reload::Changed { accepted }
    }

    /// Re-reads the token file every [`RELOAD_EVERY`] until `stop`; returns at once without a
    /// file. The server spawns this next to its other background tasks.
    pub async fn reload_until(self, stop: CancellationToken) {
        let Some(path) = self.0.file.clone() else {
            return;
        };
        let what = format!("{} ({})", self.0.what, path.display());
        crate::reload::every_tick_until(&what, stop, || async {
            match self.reload().await {
                Reload::Unchanged => Reread::Unchanged,
                Reload::Changed { accepted } => Reread::Changed(format!("{accepted} accepted")),
                Reload::Kept(why) => Reread::Kept(why),
            }
        })
        .await;
    }
}

/// The three credentials and which routes take which:
/// - admin routes (`/v1/admin`): the admin token only;
/// - forwarding headers: the peer token only (they steer routing, so only servers send them);
/// - `/v1/internal` (read-through): the peer token, or the admin token (which can export every
///   record anyway);
/// - data routes under `--require-token-for-data`: the data token, or the admin or peer token.
///   Both of those can already read and write every key (export and import; internal reads and
///   forwarded writes), so accepting them grants nothing more, and forwarded data requests carry
///   the peer token. What the split guarantees is the other way: a data token opens no admin
///   route and no peer path.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub admin: AdminToken,
    pub peer: AdminToken,
    pub data: AdminToken,
}

impl Credentials {
    /// Reads the token files; an unset peer or data file means the admin file's tokens.
    pub fn from_files(
        admin: Option<&Path>,
        peer: Option<&Path>,
        data: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let admin = AdminToken::from_file(admin)?;
        let or_admin = |path: Option<&Path>, what| match path {
            Some(_) => AdminToken::from_named_file(path, what),
            None => Ok(admin.clone()),
        };
        Ok(Credentials {
            peer: or_admin(peer, "peer token file")?,
            data: or_admin(data, "data token file")?,
            admin,
        })
    }

    /// Everyone the same tokens (tests).
    pub fn single(token: AdminToken) -> Self {
        Credentials {
            peer: token.clone(),
            data: token.clone(),
            admin: token,
        }
    }

    /// Whether a data route under `--require-token-for-data` may be served.
    pub fn authorizes_data(&self, headers: &HeaderMap) -> bool {
        // `|` rather than `||`: every set is compared, whichever matched.
        self.data.authorizes(headers)
            | self.admin.authorizes(headers)
            | self.peer.authorizes(headers)
    }

    /// `/v1/internal`: the peer token or the admin token, else 401.
    pub fn require_peer_or_admin(&self, headers: &HeaderMap) -> Result<(), Error> {
        if self.admin.authorizes(headers) {
            return Ok(());
        }
        self.peer.require(headers)
    }

    /// Re-reads every distinct token file until `stop` (shared sets are reloaded once).
    pub async fn reload_until(self, stop: CancellationToken) {
        let mut sets = vec![self.admin.clone()];
        for set in [self.peer, self.data] {
            if !sets.iter().any(|s| s.same_as(&set)) {
                sets.push(set);
            }
        }
        futures::future::join_all(sets.into_iter().map(|s| s.reload_until(stop.clone()))).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn every_line_is_accepted_and_the_first_is_sent() {
        let t = AdminToken::new(Some(" new \n\nold\n".to_owned()));
        assert_eq!(t.sending().as_deref(), Some("new"));
        assert!(t.authorizes(&bearer("new")));
        assert!(t.authorizes(&bearer("old")));
        assert!(!t.authorizes(&bearer("other")));
        assert!(!t.authorizes(&bearer("ne")));
        assert!(!t.authorizes(&HeaderMap::new()));
        assert!(t.require(&bearer("old")).is_ok());
    }

    #[test]
    fn no_token_authorizes_nothing() {
        for t in [
            AdminToken::new(None),
            AdminToken::new(Some(" \n".to_owned())),
        ] {
            assert_eq!(t.sending(), None);
            assert!(!t.authorizes(&bearer("")));
            assert!(t.require(&bearer("x")).is_err());
        }
    }

    #[test]
    fn debug_never_shows_a_token() {
        let t = AdminToken::new(Some("secret-a\nsecret-b".to_owned()));
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[tokio::test]
    async fn reload_picks_up_changes_and_keeps_tokens_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "old\n").unwrap();
        let t = AdminToken::from_file(Some(&file)).unwrap();
        assert_eq!(t.reload().await, Reload::Unchanged);

        std::fs::write(&file, "old\nnew\n").unwrap();
        assert_eq!(t.reload().await, Reload::Changed { accepted: 2 });
        assert_eq!(t.sending().as_deref(), Some("old"));
        assert!(t.authorizes(&bearer("new")));

        // Emptied or removed: the tokens in force stay.
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(t.reload().await, Reload::Kept(_)));
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(t.reload().await, Reload::Kept(_)));
        assert!(t.authorizes(&bearer("old")) && t.authorizes(&bearer("new")));

        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(t.reload().await, Reload::Changed { accepted: 1 });
        assert_eq!(t.sending().as_deref(), Some("new"));
        assert!(!t.authorizes(&bearer("old")));
    }

    #[test]
    fn unset_peer_and_data_files_mean_the_admin_tokens_and_set_ones_are_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, peer) = (dir.path().join("admin"), dir.path().join("peer"));
        std::fs::write(&admin, "a\n").unwrap();
        std::fs::write(&peer, "p\n").unwrap();
        let c = Credentials::from_files(Some(&admin), None, None).unwrap();
        assert!(c.peer.same_as(&c.admin) && c.data.same_as(&c.admin));
        let c = Credentials::from_files(Some(&admin), Some(&peer), None).unwrap();
        assert!(!c.peer.authorizes(&bearer("a")) && c.peer.authorizes(&bearer("p")));
        assert!(!c.admin.authorizes(&bearer("p")));
        // Data routes take any of the three; the internal route peer or admin.
        assert!(c.authorizes_data(&bearer("a")) && c.authorizes_data(&bearer("p")));
        assert!(!c.authorizes_data(&bearer("x")));
        assert!(c.require_peer_or_admin(&bearer("a")).is_ok());
        assert!(c.require_peer_or_admin(&bearer("x")).is_err());
        assert!(Credentials::from_files(Some(&admin), Some(&dir.path().join("no")), None).is_err());
    }

    #[test]
    fn a_missing_or_empty_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        assert!(AdminToken::from_file(Some(&file)).is_err());
        std::fs::write(&file, " \n\n").unwrap();
        assert!(AdminToken::from_file(Some(&file)).is_err());
        assert_eq!(
            format!("{:?}", AdminToken::from_file(None).unwrap()),
            "AdminToken(0 accepted)"
        );
    }
}
