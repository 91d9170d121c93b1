//! The management routes of a replicated shard's Raft group on [`ServerClient`]
//! (`kvproto::raft_admin`, docs/replication.md sections 5 and 7), with the admin bearer token
//! of [`crate::ClientConfig::token`] as every admin call. Each `POST` carries the group in
//! `x-kv-raft-group`; all of them are idempotent, so they are retried like the other admin
//! calls.
//!
//! What the server answers, as errors: 400 without or with a malformed group header; 409
//! `raft_group_mismatch` for another group (or a copy that is in another membership, or not
//! among the voters of an `init`); 503 `no_leader` from a copy that does not lead, naming the
//! leader in `x-kv-leader` when it knows it ([`ServerClient::raft_leader_hint`]); 503
//! `peer_unavailable` while another membership change runs; 504 `outcome_unknown` when the
//! change was proposed but not seen committed in time (read the status again).

use kvproto::raft::{GroupId, Member, RaftStatus};
use kvproto::raft_admin::{
    ADD_LEARNER_PATH, AddLearnerRequest, INIT_PATH, InitRequest, JOIN_PATH, JoinRequest,
    STATUS_PATH, SetVotersRequest, TRANSFER_LEADER_PATH, TransferLeaderRequest, VOTERS_PATH,
};
use kvproto::wire::header;
use serde::Serialize;

use crate::error::Result;
use crate::retry::Idempotency;
use crate::server::ServerClient;

impl ServerClient {
    /// `GET /v1/admin/raft/status`: this copy's view of its group (a copy that is no member
    /// yet reports its node ID, state `learner` and no members).
    pub async fn raft_status(&self) -> Result<RaftStatus> {
        let url = self.url(STATUS_PATH);
        let resp = self
            .send(Idempotency::Idempotent, || self.http.get(&url))
            .await?;
        self.json(resp).await
    }

    /// `POST /v1/admin/raft/init` to this copy: form `group` with `voters` (this copy among
    /// them). 200 again when it already is exactly that group.
    pub async fn raft_init(&self, group: &GroupId, voters: &[Member]) -> Result<RaftStatus> {
        let body = InitRequest {
            group: group.clone(),
            voters: voters.to_vec(),
        };
        self.raft_post(INIT_PATH, group, &body).await
    }

    /// `POST /v1/admin/raft/join` to a copy in no group (copy 0 on a replaced, empty volume):
    /// it takes `group` for good as `member` (its own node ID, pod and address) and waits
    /// until the leader adds it. Answers its status (`group` set, no members); again on a copy
    /// already running that group: the same. 409 `raft_group_mismatch` is final for that
    /// volume (another group, another node ID, keys of its own).
    pub async fn raft_join(&self, group: &GroupId, member: &Member) -> Result<RaftStatus> {
        let body = JoinRequest {
            group: group.clone(),
            member: member.clone(),
        };
        self.raft_post(JOIN_PATH, group, &body).await
    }

    /// `POST /v1/admin/raft/add-learner` to the leader: `member` starts receiving the log.
    /// Answers the leader's status.
    pub async fn raft_add_learner(&self, group: &GroupId, member: &Member) -> Result<RaftStatus> {
        let body = AddLearnerRequest {
            member: member.clone(),
        };
        self.raft_post(ADD_LEARNER_PATH, group, &body).await
    }

    /// `POST /v1/admin/raft/voters` to the leader: exactly `voters` vote once the change is
    /// committed. Answers the leader's status.
    pub async fn raft_set_voters(&self, group: &GroupId, voters: &[Member]) -> Result<RaftStatus> {
        let body = SetVotersRequest {
            voters: voters.to_vec(),
        };
        self.raft_post(VOTERS_PATH, group, &body).await
    }

    /// `POST /v1/admin/raft/transfer-leader` to the leader: hand leadership to `to` (None: the
    /// most up-to-date other voter). Answers the new leader.
    pub async fn raft_transfer_leader(
        &self,
        group: &GroupId,
        to: Option<&Member>,
    ) -> Result<Member> {
        let body = TransferLeaderRequest { to: to.cloned() };
        self.raft_post(TRANSFER_LEADER_PATH, group, &body).await
    }

    /// The pod this server's last answer named as its shard's leader (`x-kv-leader`), e.g.
    /// after a 503 `no_leader` from a copy that follows.
    pub fn raft_leader_hint(&self) -> Option<String> {
        self.hints().leader_named_by(self.base())
    }

    async fn raft_post<B, T>(&self, path: &str, group: &GroupId, body: &B) -> Result<T>
    where
        B: Serialize + Sync,
        T: serde::de::DeserializeOwned,
    {
        let url = self.url(path);
        let group = group.to_string();
        let resp = self
            .send(Idempotency::Idempotent, || {
                self.http
                    .post(&url)
                    .header(header::RAFT_GROUP, &group)
                    .json(body)
            })
            .await?;
        self.json(resp).await
    }
}

#[cfg(test)]
mod tests {
    //! Against a one-connection-at-a-time HTTP/1.1 responder on 127.0.0.1 that records each
    //! request and answers a scripted status and body.

    use std::sync::{Arc, Mutex};

    use kvproto::raft::{MemberStatus, Role, ServerState};
    use kvproto::wire::ErrorCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::{ClientConfig, Error, RetryPolicy};

    /// One request as received: the request line, the headers (lowercased names), the body.
    #[derive(Debug, Clone)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A server answering every request with `status`, `extra` headers and `body`.
    async fn responder(
        status: u16,
        extra: &'static str,
        body: String,
    ) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_at) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..at]).into_owned(), at + 4);
                    }
                };
                let mut lines = head.split("\r\n");
                let line = lines.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_at + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let end = buf.len().min(body_at + length);
                let got = String::from_utf8_lossy(&buf[body_at..end]).into_owned();
                log.lock().unwrap().push(Seen {
                    line,
                    headers,
                    body: got,
                });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (url, seen)
    }

    fn client(url: &str) -> ServerClient {
        let config = ClientConfig {
            token: Some("admin-token".into()),
            retry: RetryPolicy::NONE,
            ..ClientConfig::default()
        };
        ServerClient::new(url, config).unwrap()
    }

    fn member(id: u64, pod: &str) -> Member {
        Member {
            node_id: id,
            pod: pod.into(),
            addr: format!("http://{pod}.kv.ns.svc:80"),
        }
    }

    fn group() -> GroupId {
        GroupId {
            store_uid: "uid-1".into(),
            shard: 2,
        }
    }

    fn status() -> RaftStatus {
        RaftStatus {
            group: Some(group()),
            node_id: u64::MAX,
            state: ServerState::Leader,
            term: 3,
            leader: Some(member(u64::MAX, "kv-2")),
            last_log_index: Some(9),
            committed: Some(9),
            applied: Some(9),
            members: vec![MemberStatus {
                member: member(u64::MAX, "kv-2"),
                role: Role::Voter,
                matched: Some(9),
                lag: Some(0),
            }],
        }
    }

    #[tokio::test]
    async fn every_post_names_the_group_and_sends_the_admin_token() {
        let body = serde_json::to_string(&status()).unwrap();
        let (url, seen) = responder(200, "", body).await;
        let c = client(&url);
        let voters = [member(u64::MAX, "kv-2"), member(7, "kv-r1-2")];
        assert_eq!(c.raft_init(&group(), &voters[..1]).await.unwrap(), status());
        c.raft_add_learner(&group(), &voters[1]).await.unwrap();
        c.raft_set_voters(&group(), &voters).await.unwrap();
        c.raft_join(&group(), &voters[1]).await.unwrap();
        assert_eq!(c.raft_status().await.unwrap().node_id, u64::MAX);

        let seen = seen.lock().unwrap().clone();
        let lines: Vec<&str> = seen.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "POST /v1/admin/raft/init HTTP/1.1",
                "POST /v1/admin/raft/add-learner HTTP/1.1",
                "POST /v1/admin/raft/voters HTTP/1.1",
                "POST /v1/admin/raft/join HTTP/1.1",
                "GET /v1/admin/raft/status HTTP/1.1",
            ]
        );
        for s in &seen {
            assert_eq!(
                s.header("authorization"),
                Some("Bearer admin-token"),
                "{s:?}"
            );
        }
        for s in &seen[..4] {
            assert_eq!(s.header(header::RAFT_GROUP), Some("uid-1/2"), "{s:?}");
        }
        assert!(seen[4].header(header::RAFT_GROUP).is_none());
        let init: InitRequest = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!((init.group, init.voters), (group(), voters[..1].to_vec()));
        assert!(
            seen[0].body.contains("\"18446744073709551615\""),
            "{}",
            seen[0].body
        );
        let learner: AddLearnerRequest = serde_json::from_str(&seen[1].body).unwrap();
        assert_eq!(learner.member, voters[1]);
        let set: SetVotersRequest = serde_json::from_str(&seen[2].body).unwrap();
        assert_eq!(set.voters, voters);
        let join: JoinRequest = serde_json::from_str(&seen[3].body).unwrap();
        assert_eq!((join.group, join.member), (group(), voters[1].clone()));
    }

    #[tokio::test]
    async fn a_transfer_answers_the_new_leader() {
        let to = member(7, "kv-r1-2");
        let (url, seen) = responder(200, "", serde_json::to_string(&to).unwrap()).await;
        let c = client(&url);
        assert_eq!(
            c.raft_transfer_leader(&group(), Some(&to)).await.unwrap(),
            to
        );
        let body: TransferLeaderRequest =
            serde_json::from_str(&seen.lock().unwrap()[0].body).unwrap();
        assert_eq!(body.to, Some(to));
    }

    #[tokio::test]
    async fn a_follower_refuses_with_no_leader_and_names_the_leader() {
        let body = r#"{"error":"no_leader","message":"this copy does not lead"}"#.to_owned();
        let (url, _) = responder(503, "x-kv-leader: kv-r2-2\r\n", body).await;
        let c = client(&url);
        let err = c.raft_set_voters(&group(), &[]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: 503,
                    code: Some(ErrorCode::NoLeader),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(c.raft_leader_hint().as_deref(), Some("kv-r2-2"));
    }

    #[tokio::test]
    async fn another_group_is_a_mismatch() {
        let body = r#"{"error":"raft_group_mismatch","message":"group uid-2/2"}"#.to_owned();
        let (url, _) = responder(409, "", body).await;
        let err = client(&url)
            .raft_init(&group(), &[member(1, "kv-2")])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: 409,
                    code: Some(ErrorCode::RaftGroupMismatch),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
